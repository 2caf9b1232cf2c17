"""A split of a trajectory store as in-memory tensors, with its grid and fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from latentda.data.normalise import Normaliser
from latentda.errors import DataError
from latentda.systems.registry import system_class

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TrajectorySet:
    """Trajectories of one split.

    Attributes
    ----------
    fields
        ``(n, T, C, H, W)`` float32, physical units.
    params
        ``(n, p)`` float64, physical units.
    index
        ``(n,)`` trajectory indices in the store.
    """

    fields: Tensor
    params: Tensor
    index: Tensor

    def __len__(self) -> int:
        return self.fields.shape[0]


def fingerprint(ds: xr.Dataset) -> str:
    """Hash of what a store holds (system config, trajectory count, seed, dtype): two stores
    with the same fingerprint hold the same trajectories and splits."""
    spec = ds.attrs.get("latentda")
    if spec is None:
        raise DataError("not a latentda dataset (no 'latentda' attribute)")
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def dataset_info(ds: xr.Dataset) -> dict[str, Any]:
    """System description of a store: its config, channel and parameter names, grid axes."""
    spec = json.loads(ds.attrs["latentda"])
    ax0, ax1 = ds["fields"].dims[-2:]
    return {
        "system": spec["system"],
        "channels": [str(c) for c in ds["channel"].values],
        "params": [str(p) for p in ds["param"].values],
        "axes": [str(ax0), str(ax1)],
        "shape": [int(s) for s in ds["fields"].shape[1:]],
        "frame_times": [float(t) for t in ds["time"].values],
        "fingerprint": fingerprint(ds),
    }


def split_indices(ds: xr.Dataset, split: str) -> np.ndarray:
    """Store indices ``(n,)`` of the trajectories of ``split``, in store order: position ``i``
    within the split is store trajectory ``split_indices(ds, split)[i]``."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    if "split" not in ds:
        raise DataError("dataset has no 'split' variable; regenerate it with `latentda simulate`")
    return np.flatnonzero(ds["split"].values == split)


def load_split(ds: xr.Dataset, split: str, which: list[int] | None = None) -> TrajectorySet:
    """Read the trajectories of ``split`` (``train``, ``val`` or ``test``) into memory, or
    only those at positions ``which`` within the split (only they are read from disk).

    Raises :class:`DataError` if the split is empty, a position is out of range, or the data
    hold NaN or Inf (a store written by an interrupted run is refused earlier, by
    ``open_dataset``).
    """
    idx = split_indices(ds, split)
    if idx.size == 0:
        raise DataError(
            f"dataset has no {split!r} trajectories ({ds.sizes['trajectory']} in all); "
            "simulate more trajectories"
        )
    if which is not None:
        outside = [i for i in which if not 0 <= i < idx.size]
        if outside:
            raise DataError(
                f"trajectory {outside[0]} out of range: the {split} split has "
                f"{idx.size} trajectories"
            )
        idx = idx[which]
    # isel reads only these trajectories' chunks; ``.values[idx]`` would read the whole store.
    fields = ds["fields"].isel(trajectory=idx).values
    fields = torch.from_numpy(np.ascontiguousarray(fields, dtype=np.float32))
    if not torch.isfinite(fields).all():
        bad = sorted({int(idx[i]) for i in torch.nonzero(~torch.isfinite(fields))[:, 0].tolist()})
        raise DataError(f"NaN or Inf in the fields of trajectories {bad[:5]} ({split} split)")
    params = torch.from_numpy(
        np.asarray(ds["params"].isel(trajectory=idx).values, dtype=np.float64)
    )
    return TrajectorySet(fields, params, torch.from_numpy(idx))


def grid_coords(ds: xr.Dataset) -> Tensor:
    """Grid points of the store as ``(H·W, 2)`` float32 in ``[-1, 1]²``, row-major over
    ``(ax0, ax1)``, the input ``ξ`` of mesh-free networks (see :func:`unit_coords`)."""
    axes = dataset_axes(ds)
    g0, g1 = torch.meshgrid(*axes, indexing="ij")
    return unit_coords(torch.stack([g0.reshape(-1), g1.reshape(-1)], dim=-1), axes)


def unit_coords(points: Tensor, axes: list[Tensor]) -> Tensor:
    """Coordinates ``(…, 2)`` in the grid's units -> ``[-1, 1]²`` (float32): each axis is
    mapped affinely from ``[min, max]`` of its grid nodes, so a sensor between nodes maps
    in between and models stay mesh-free."""
    cols = []
    for k, a in enumerate(axes):
        lo, hi = float(a.min()), float(a.max())
        span = (hi - lo) or 1.0
        cols.append(2.0 * (points[..., k].double() - lo) / span - 1.0)
    return torch.stack(cols, dim=-1).float()


def unit_periods(ds: xr.Dataset) -> tuple[float | None, float | None]:
    """Period of each grid axis in the units of :func:`unit_coords` (``None``: not periodic).

    A periodic axis of ``n`` nodes spaced ``h`` has period ``n h``; its nodes span
    ``(n − 1) h``, mapped to a length of 2, so the period is ``2n / (n − 1)``."""
    return tuple(  # type: ignore[return-value]
        2.0 * len(a) / (len(a) - 1) if per and len(a) > 1 else None
        for a, per in zip(dataset_axes(ds), dataset_periodic(ds), strict=True)
    )


def forcing_clock(info: dict[str, Any]) -> tuple[tuple[float, ...], float]:
    """Periods of the known forcing of a store's system (its class's optional
    ``forcing_periods(config)``, in model time) and the time of frame 0, both in frame
    spacings, for ``info`` from :func:`dataset_info`; ``((), 0.0)`` without forcing."""
    periods = getattr(system_class(info["system"].get("name")), "forcing_periods", None)
    times = info["frame_times"]
    if periods is None or len(times) < 2:
        return (), 0.0
    dt = times[1] - times[0]
    return tuple(p / dt for p in periods(info["system"])), times[0] / dt


def dataset_periodic(ds: xr.Dataset) -> tuple[bool, bool]:
    """Whether each grid axis of a store is periodic (its system's ``periodic_axes``)."""
    return system_class(dataset_info(ds)["system"].get("name")).periodic_axes


def dataset_axes(ds: xr.Dataset) -> list[Tensor]:
    """The two grid axes of a store, ``[(H,), (W,)]`` float64 in the system's units."""
    return [
        torch.from_numpy(np.array(ds[d].values, dtype=np.float64)) for d in ds["fields"].dims[-2:]
    ]


def normaliser_for(ds: xr.Dataset, train: TrajectorySet) -> Normaliser:
    """Normalisation statistics from the training split and the store's prior bounds."""
    if "param_low" not in ds:
        raise DataError("dataset records no prior bounds; regenerate it with `latentda simulate`")
    lo = torch.from_numpy(np.array(ds["param_low"].values, dtype=np.float64))
    hi = torch.from_numpy(np.array(ds["param_high"].values, dtype=np.float64))
    return Normaliser.fit(train.fields, lo, hi)
