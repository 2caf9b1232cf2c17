"""``torch.distributed`` glue for work sharded by rank (launched by ``torchrun``)."""

from __future__ import annotations

import os

import torch.distributed as dist


def rank_and_world(backend: str = "gloo") -> tuple[int, int]:
    """``(rank, world_size)``; joins the process group when launched by torchrun (``gloo`` on
    CPU; ``nccl`` for CUDA tensors)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if dist.is_initialized():
        dist.barrier()


def is_rank0() -> bool:
    """Whether this process writes shared outputs (rank 0, or the only process)."""
    return not dist.is_initialized() or dist.get_rank() == 0
