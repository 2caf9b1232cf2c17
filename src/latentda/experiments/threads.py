"""Torch's intra-op thread count for the length of one experiment."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch threads (``None``: leave the count alone), then
    restore the previous count, also when the block raises. Small networks and latent
    filters are dominated by thread synchronisation, so experiments pick their own."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
