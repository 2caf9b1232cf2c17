"""Shared fixtures: deterministic float64 defaults."""

import pytest
import torch


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
