"""Shared fixtures: deterministic float64 defaults."""

import pytest
import torch


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


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
