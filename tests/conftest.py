"""Shared fixtures: deterministic float64 defaults."""

import pytest
import torch


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


# Small tensors: one thread avoids OpenMP oversubscription and keeps reductions in one order.
torch.set_num_threads(1)
