"""Trajectory datasets as xarray/zarr stores.

Layout (dimension names in brackets)::

    fields  (trajectory, time, channel, <ax0>, <ax1>)  float32, one chunk per trajectory
    params  (trajectory, param)                        float64, the parameters of each run
    done    (trajectory)                                bool, set after a trajectory is stored
    split   (trajectory)                                "train" | "val" | "test" (60/20/20)
    coords: trajectory, time (model time of each frame), channel, param, <ax0>, <ax1>
    attrs:  latentda (JSON: system config, trajectories, seed, dtype), latentda_version

``<ax0>, <ax1>`` are the system's axis names (``y, x`` or ``lat, lon``). Generation is
resumable: a trajectory is written, then flagged ``done``; a rerun generates only the
trajectories not flagged. Parameters and each trajectory's random stream depend only on the
seed and the trajectory index, so one process, several ranks and an interrupted-then-resumed
run all give the same store.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
import zarr
from tqdm.auto import tqdm

from latentda import __version__
from latentda.data.distributed import barrier, rank_and_world
from latentda.errors import ConfigError, DataError
from latentda.systems.base import FieldSystem, simulate_frames

SPLIT_FRACTIONS = (0.6, 0.2, 0.2)


@dataclass(frozen=True)
class DatasetSpec:
    """What a store holds; a store is only ever extended by the same spec."""

    system: dict[str, Any]
    trajectories: int
    seed: int
    dtype: str = "float32"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def trajectory_generator(seed: int, index: int) -> torch.Generator:
    """The random stream of trajectory ``index`` (independent of batching and ranks)."""
    return torch.Generator().manual_seed((seed * 0x9E3779B1 + 7919 * (index + 1)) % 2**62)


def draw_params(system: FieldSystem, n: int, seed: int) -> torch.Tensor:
    """Parameters of all ``n`` trajectories, ``(n, p)``, from the prior."""
    return system.sample_params(n, torch.Generator().manual_seed(seed)).to(torch.float64)


def draw_splits(n: int, seed: int) -> np.ndarray:
    """Seeded 60/20/20 assignment of trajectories to train/val/test, ``(n,)`` strings."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 104729)).numpy()
    n_train = int(round(SPLIT_FRACTIONS[0] * n))
    n_val = int(round(SPLIT_FRACTIONS[1] * n))
    split = np.empty(n, dtype=object)
    split[perm[:n_train]] = "train"
    split[perm[n_train : n_train + n_val]] = "val"
    split[perm[n_train + n_val :]] = "test"
    return split.astype(str)


def _read_spec(path: Path) -> DatasetSpec:
    try:
        group = zarr.open_group(str(path), mode="r")
        raw = group.attrs["latentda"]
    except Exception:  # noqa: BLE001 - any failure means "not one of our stores"
        raise DataError(f"{path} exists but is not a latentda dataset") from None
    return DatasetSpec(**json.loads(str(raw)))


def _differences(a: DatasetSpec, b: DatasetSpec) -> list[str]:
    out = [k for k in ("trajectories", "seed", "dtype") if getattr(a, k) != getattr(b, k)]
    keys = sorted(set(a.system) | set(b.system))
    out += [f"system.{k}" for k in keys if a.system.get(k) != b.system.get(k)]
    return out


def _create(path: Path, spec: DatasetSpec, system: FieldSystem) -> None:
    """Write the empty store to a temporary sibling and rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    n = spec.trajectories
    axes = system.axes()
    (ax0, v0), (ax1, v1) = axes.items()
    c, h, w = system.state_shape
    t = system.n_frames
    group = zarr.open_group(str(tmp), mode="w")
    group.create_array(
        "fields",
        shape=(n, t, c, h, w),
        chunks=(1, t, c, h, w),
        dtype=spec.dtype,
        fill_value=np.nan,
        dimension_names=["trajectory", "time", "channel", ax0, ax1],
    )
    params = draw_params(system, n, spec.seed).numpy()
    arr = group.create_array(
        "params",
        shape=params.shape,
        chunks=(1, params.shape[1] or 1),
        dtype="float64",
        dimension_names=["trajectory", "param"],
    )
    arr[:] = params
    group.create_array(
        "done",
        shape=(n,),
        chunks=(1,),
        dtype="bool",
        fill_value=False,
        dimension_names=["trajectory"],
    )
    coords: dict[str, tuple[np.ndarray, str]] = {
        "trajectory": (np.arange(n), "trajectory"),
        "time": (system.spinup_time + system.frame_dt * np.arange(t), "time"),
        "channel": (np.array(system.channel_names, dtype=str), "channel"),
        "param": (np.array(system.param_names, dtype=str), "param"),
        ax0: (v0.numpy(), ax0),
        ax1: (v1.numpy(), ax1),
        "split": (draw_splits(n, spec.seed), "trajectory"),
        "param_low": (system.param_bounds()[:, 0].numpy(), "param"),
        "param_high": (system.param_bounds()[:, 1].numpy(), "param"),
    }
    for name, (values, dim) in coords.items():
        values = np.asarray(values)
        dtype = str if values.dtype.kind in "UO" else values.dtype
        arr = group.create_array(name, shape=values.shape, dtype=dtype, dimension_names=[dim])
        arr[:] = values
    group.attrs["latentda"] = spec.to_json()
    group.attrs["latentda_version"] = __version__
    os.replace(tmp, path)


def ensure_store(path: Path, spec: DatasetSpec, system: FieldSystem) -> None:
    """Create the store, or check that an existing one was written by the same spec."""
    if path.exists():
        old = _read_spec(path)
        diff = _differences(old, spec)
        if diff:
            raise DataError(
                f"{path} was written by another configuration (differs in: {', '.join(diff)}); "
                "use another --out or delete it"
            )
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _create(path, spec, system)
    except PermissionError as exc:
        raise ConfigError(f"cannot write to {path}: {exc.strerror}") from None
    except OSError as exc:
        raise ConfigError(f"cannot write to {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class GenerateReport:
    """What one call (one rank) did."""

    generated: int
    skipped: int
    total: int


def generate_dataset(
    path: str | os.PathLike[str],
    system: FieldSystem,
    trajectories: int,
    seed: int = 0,
    batch: int = 1,
    progress: bool = False,
) -> GenerateReport:
    """Simulate ``trajectories`` runs of ``system`` into the zarr store ``path``.

    Resumable (finished trajectories are skipped) and shardable: under ``torchrun`` each
    rank generates the trajectories ``i`` with ``i % world == rank``; rank 0 creates the store.

    Parameters
    ----------
    path
        Store directory (``*.zarr``).
    system
        A field system (``latentda.systems.registry.field_system``).
    trajectories
        Number of trajectories ``n`` (> 0).
    seed
        Seeds the parameter draw, the splits and every trajectory's initial state.
    batch
        Trajectories simulated together (same results as one at a time).
    progress
        Progress bar over trajectories (rank 0 only).
    """
    if trajectories < 1:
        raise ConfigError(f"--trajectories must be >= 1, got {trajectories}")
    if batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {batch}")
    store = Path(path)
    spec = DatasetSpec(system.config(), trajectories, seed)
    rank, world = rank_and_world()
    if rank == 0:
        ensure_store(store, spec, system)
    barrier()
    if rank != 0:
        _read_spec(store)
    group = zarr.open_group(str(store), mode="r+")
    fields, done = group["fields"], group["done"]
    params = torch.as_tensor(np.asarray(group["params"][:]))
    flags = np.asarray(done[:])
    mine = [i for i in range(trajectories) if i % world == rank]
    todo = [i for i in mine if not flags[i]]
    bar = tqdm(total=len(todo), disable=not progress or rank != 0, desc="trajectories")
    for start in range(0, len(todo), batch):
        idx = todo[start : start + batch]
        u = params[idx]
        x0 = torch.cat(
            [
                system.initial_state(u[j : j + 1], trajectory_generator(seed, i))
                for j, i in enumerate(idx)
            ]
        )
        frames = simulate_frames(system, u, x0)
        if not bool(torch.isfinite(frames).all()):
            bad = idx[int(torch.nonzero(~torch.isfinite(frames).flatten(1).all(1))[0])]
            raise DataError(f"trajectory {bad} became non-finite: the solver is unstable")
        for j, i in enumerate(idx):
            fields[i] = frames[j].to(torch.float32).numpy()
            done[i] = True  # after the data: a killed run redoes this trajectory
        bar.update(len(idx))
    bar.close()
    barrier()
    return GenerateReport(len(todo), len(mine) - len(todo), trajectories)


def open_dataset(path: str | os.PathLike[str], require_complete: bool = True) -> xr.Dataset:
    """Open a store as an :class:`xarray.Dataset` (lazily), refusing incomplete ones."""
    store = Path(path)
    if not store.exists():
        raise DataError(f"{store}: no such dataset")
    spec = _read_spec(store)
    ds = xr.open_zarr(str(store), consolidated=False)
    if require_complete:
        missing = int((~ds["done"].values).sum())
        if missing:
            raise DataError(
                f"dataset {store} is incomplete: {missing} of {spec.trajectories} trajectories "
                "missing; rerun `latentda simulate` with the same arguments to finish it"
            )
    return ds
