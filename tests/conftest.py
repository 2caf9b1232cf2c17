"""Shared fixtures: deterministic float64 defaults."""

from pathlib import Path

import pytest
import torch

from latentda.filters.ldensf import LatentSurrogate
from tiny import make_kolmo_store, train_tiny_surrogate


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def float64_default():  # noqa: ANN201 - round-off oracles need float64; restored afterwards
    """float64 as torch's default dtype for one test (``pytest.mark.usefixtures``)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


# Small tensors: one thread avoids OpenMP oversubscription and keeps reductions in one order.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def kolmo_store(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A tiny real Kolmogorov store (16², 10 frames, 12 trajectories: 7/2/3 train/val/test),
    shared by the surrogate tests (:func:`tiny.make_kolmo_store`)."""
    return make_kolmo_store(tmp_path_factory.mktemp("data") / "kolmo16.zarr")


@pytest.fixture(scope="session")
def surrogate_dirs(
    kolmo_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """~12 s: the directories ``(ldnet, encoder)`` of a tiny LDNet + fixed-order encoder
    (4×4 regular sensors, 10 % noise) trained on ``kolmo_store``
    (:func:`tiny.train_tiny_surrogate`)."""
    from latentda.data import open_dataset

    ds = open_dataset(kolmo_store)
    ld, enc = tmp_path_factory.mktemp("ldnet"), tmp_path_factory.mktemp("encoder")
    train_tiny_surrogate(ds, ld, enc)
    return ld, enc


@pytest.fixture(scope="session")
def surrogate(kolmo_store: Path, surrogate_dirs: tuple[Path, Path]) -> LatentSurrogate:
    """The tiny surrogate of ``surrogate_dirs`` loaded, shared by the LD-EnSF and
    field-twin tests.

    The LDNet resolves the Reynolds dependence (test rel. RMSE ≈ 0.09 with the true
    parameter; the test_encoder one, ≈ 0.8, predicts the mean flow for any parameter, so no
    filter could beat a prior rollout with it).
    """
    from latentda.data import open_dataset

    return LatentSurrogate.load(*surrogate_dirs, open_dataset(kolmo_store))
