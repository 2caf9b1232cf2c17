"""Shared fixtures: deterministic float64 defaults."""

from pathlib import Path

import pytest
import torch

from latentda.filters.ldensf import LatentSurrogate


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
    shared by the surrogate tests."""
    from latentda.data import generate_dataset
    from latentda.systems import field_system

    path = tmp_path_factory.mktemp("data") / "kolmo16.zarr"
    system = field_system("kolmogorov", "ci", n=16, n_frames=10)
    generate_dataset(path, system, 12, seed=3, progress=False)
    return path


@pytest.fixture(scope="session")
def surrogate(kolmo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> LatentSurrogate:
    """~12 s: a tiny LDNet + fixed-order encoder (4×4 regular sensors, 10 % noise) on
    ``kolmo_store``, shared by the LD-EnSF and field-twin tests.

    The LDNet resolves the Reynolds dependence (test rel. RMSE ≈ 0.09 with the true
    parameter; the test_encoder one, ≈ 0.8, predicts the mean flow for any parameter, so no
    filter could beat a prior rollout with it).
    """
    from latentda.data import open_dataset
    from latentda.surrogates.train_encoder import encoder_config, train_encoder
    from latentda.surrogates.train_ldnet import train_config, train_ldnet

    ds = open_dataset(kolmo_store)
    ld, enc = tmp_path_factory.mktemp("ldnet"), tmp_path_factory.mktemp("encoder")
    model = {"latent_dim": 4, "recon_width": 32, "recon_blocks": 2, "fourier_features": 16}
    stage1 = {"epochs": 300, "batch_size": 2, "points": 128, "frames": 5, "lr": 2e-2}
    cfg = train_config(
        {
            "model": {**model, "dyn_width": 32},
            "stage1": {**stage1, "eval_every": 50},
            "stage2": {"epochs": 2, "batch_size": 3, "points": 128, "eval_every": 2},
        }
    )
    train_ldnet(ds, ld, cfg, progress=False)
    ecfg = encoder_config(
        {
            "model": {"mode": "fixed", "hidden": 32, "embed": 16},
            "sensors": {"layout": {"name": "regular", "ny": 4, "nx": 4}, "noise_level": 0.1},
            "stage": {"epochs": 100, "batch_size": 3, "eval_every": 10, "lr": 3e-3},
        }
    )
    train_encoder(ds, ld, enc, ecfg, progress=False)
    return LatentSurrogate.load(ld, enc, ds)
