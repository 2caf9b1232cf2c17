"""Trajectory datasets on disk (xarray + zarr): generation, resumption, splits, loading."""

from latentda.data.store import (
    DatasetSpec,
    generate_dataset,
    open_dataset,
    trajectory_generator,
)

__all__ = ["DatasetSpec", "generate_dataset", "open_dataset", "trajectory_generator"]
