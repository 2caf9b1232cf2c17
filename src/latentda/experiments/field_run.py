"""``latentda run`` on stored trajectories of a field system: one method, given trained
surrogates, on chosen trajectories of a split, with the outputs of a twin experiment.

The YAML file names the store (``data``), the surrogates, the observation setting and the
method (any key of :data:`~.field_config.METHODS` with its knobs)::

    data: data/kolmo.zarr
    surrogates: {ldnet: runs/ldnet, encoder: runs/enc}
    observations: {layout: regular, ny: 10, nx: 10, noise_level: 0.1, every: 1}
    method: {name: levda, ensemble_size: 20, window: 4, inflation: 1.0, iterations: 5}
    trajectories: 10       # the first 10 of the split, or a list of positions in it
    seeds: [0]

The truth is each stored trajectory, observed by :class:`~.field_config.Setting` exactly as
``latentda benchmark`` observes it (same sensors for the same settings and seed, same noise
for the same seed), so a run reproduces a benchmark cell.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from latentda import __version__
from latentda.data import open_dataset
from latentda.data.splits import load_split, normaliser_for, split_indices
from latentda.errors import ConfigError, FilterDivergence
from latentda.experiments.config import merge, parse_overrides
from latentda.experiments.field_config import (
    FieldMethodConfig,
    MethodContext,
    Setting,
    SettingConfig,
)
from latentda.experiments.field_outcomes import Outcome, attempt, summarise
from latentda.experiments.results import write_run
from latentda.experiments.threads import torch_threads
from latentda.io import prepare_output
from latentda.schema import parse, positive, to_dict


@dataclass
class SurrogatesConfig:
    """Directories written by ``latentda train ldnet|encoder|vae`` (those the method
    needs)."""

    ldnet: str | None = None
    encoder: str | None = None
    vae: str | None = None

    def artefacts(self) -> dict[str, Path]:
        return {k: Path(v) for k, v in to_dict(self).items() if v is not None}


@dataclass
class FieldRunConfig:
    """A twin experiment on stored trajectories (a ``latentda run`` file with ``data``).

    Attributes
    ----------
    data
        The store (``latentda simulate``).
    method
        The method and its knobs (:data:`~.field_config.METHODS`).
    surrogates
        Trained surrogate directories.
    observations
        Sensors, noise level, schedule and missing-reading rate
        (:class:`~.field_config.SettingConfig`; default: the paper's 10×10 sensors, every
        frame, 10 % noise).
    sensor_seed
        Places a random layout: the encoder trainer's ``seed`` for the layout it trained on.
    split
        ``test`` (default) or ``val``.
    trajectories
        The first ``n`` trajectories of the split, or a list of positions within it.
    seeds
        Seeds of the readings and of the method's randomness; every trajectory is run once
        per seed.
    threads
        Torch threads (null: torch's default).
    """

    data: str
    method: FieldMethodConfig
    surrogates: SurrogatesConfig = field(default_factory=SurrogatesConfig)
    observations: SettingConfig = field(default_factory=SettingConfig)
    sensor_seed: int = 0
    split: Literal["test", "val"] = "test"
    trajectories: int | list[int] = 10
    seeds: list[int] = field(default_factory=lambda: [0])
    threads: int | None = None

    def validate(self, where: str) -> None:
        if isinstance(self.trajectories, int):
            positive(where, trajectories=self.trajectories)
        elif (
            not self.trajectories
            or min(self.trajectories) < 0
            or len(set(self.trajectories)) != len(self.trajectories)
        ):
            raise ConfigError(
                f"{where}.trajectories: give distinct positions >= 0, got {self.trajectories}"
            )
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ConfigError(f"{where}.seeds: give distinct seeds >= 0, got {self.seeds}")
        if self.threads is not None:
            positive(where, threads=self.threads)
        given = self.surrogates.artefacts()
        missing = [k for k in self.method.needs if k not in given]
        if missing:
            raise ConfigError(
                f"{where}.surrogates.{missing[0]}: method {self.method.tag} needs a trained "
                f"{missing[0]} (latentda train {missing[0]})"
            )

    def positions(self, n_split: int) -> list[int]:
        """Positions within the split, checked against its size ``n_split``."""
        if isinstance(self.trajectories, int):
            if self.trajectories > n_split:
                raise ConfigError(
                    f"trajectories: the {self.split} split holds {n_split}, "
                    f"{self.trajectories} wanted"
                )
            return list(range(self.trajectories))
        bad = [p for p in self.trajectories if p >= n_split]
        if bad:
            raise ConfigError(
                f"trajectories: position {bad[0]} is outside the {self.split} split "
                f"({n_split} trajectories)"
            )
        return list(self.trajectories)


def field_run_config(data: dict[str, Any], overrides: list[str] | None = None) -> FieldRunConfig:
    """Validate a field run mapping (plus ``KEY=VALUE`` overrides)."""
    if overrides:
        data = merge(data, parse_overrides(overrides))
    return parse(FieldRunConfig, data, "config")


def run_field(
    config: FieldRunConfig, out: str | Path | None = None, progress: bool = False
) -> dict[str, Any]:
    """Run ``config``; with ``out``, write ``out/analysis.nc`` and then ``out/metrics.json``
    (both atomically: ``metrics.json`` exists only for a finished run). Returns the
    ``metrics.json`` content.

    Raises :class:`~latentda.errors.FilterDivergence` (nothing written) when no run
    finished; runs that diverged or could not read their case beside finished ones are
    listed in ``metrics.json`` (``errors``) and NaN in ``analysis.nc``.

    ``metrics.json`` holds, per score (``rel_rmse``, ``rmse``, ``spread``, ``crps``,
    ``coverage90``, ``param_rel_error``), the time mean and the final frame as mean ± std
    over trajectories (seeds averaged first), timings per run, what it is averaged over, the
    seed list and the validated config. ``analysis.nc`` holds per run (trajectory × seed)
    and frame the ensemble mean and standard deviation of the fields, the per-frame scores,
    the parameter ensemble's mean and std, the true parameters and the readings.
    """
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        prepare_output(out_dir)
    with torch_threads(config.threads):
        return _run(config, out_dir, progress)


def _run(config: FieldRunConfig, out: Path | None, progress: bool) -> dict[str, Any]:
    t_start = time.perf_counter()
    ds = open_dataset(config.data)
    store_index = split_indices(ds, config.split)
    positions = config.positions(len(store_index))
    normaliser = normaliser_for(ds, load_split(ds, "train"))
    setting = Setting("run", config.observations, ds, normaliser, config.sensor_seed)
    context = MethodContext(ds, normaliser, config.surrogates.artefacts())
    method = config.method.build(context)
    pairs = [(p, s) for p in positions for s in config.seeds]
    outcomes: dict[tuple[int, int], Outcome] = {}
    cases = {}
    for position, seed in tqdm(pairs, disable=not progress, desc=config.method.tag):
        case = setting.case(config.split, position, seed)
        cases[(position, seed)] = case
        outcomes[(position, seed)] = attempt(method, case, keep_frames=True)
    if all(o.result is None for o in outcomes.values()):
        first = next(iter(outcomes.values()))
        raise FilterDivergence(f"no run finished ({len(outcomes)} tried): {first.error}")
    summary = {
        "method": config.method.tag,
        "label": config.method.label,
        **summarise(outcomes),
        "wall_s": time.perf_counter() - t_start,
        "averaged_over": {
            "trajectories": len(positions),
            "seeds": len(config.seeds),
            "frames": int(ds.sizes["time"]),
            "split": config.split,
            "store_index": [int(store_index[p]) for p in positions],
        },
        "observations": setting.describe(),
        "seeds": config.seeds,
        "config": to_dict(config),
    }
    if out is not None:
        write_run(out, summary, analysis_dataset(ds, setting, outcomes, cases, summary))
    return summary


def analysis_dataset(
    ds: xr.Dataset,
    setting: Setting,
    outcomes: dict[tuple[int, int], Outcome],
    cases: dict[tuple[int, int], Any],
    summary: dict[str, Any],
) -> xr.Dataset:
    """The runs as one Dataset with dims ``run`` (trajectory × seed), ``time``, ``channel``,
    the two grid axes, ``param`` and ``sensor``; a diverged run is NaN throughout (its
    reason is in ``metrics.json``)."""
    keys = list(outcomes)
    ax0, ax1 = ds["fields"].dims[-2:]
    shape = (len(keys), ds.sizes["time"], ds.sizes["channel"], ds.sizes[ax0], ds.sizes[ax1])
    n_params = ds.sizes["param"]
    mean = np.full(shape, np.nan, dtype=np.float32)
    std = np.full(shape, np.nan, dtype=np.float32)
    p_mean = np.full((len(keys), shape[1], n_params), np.nan)
    p_std = np.full((len(keys), shape[1], n_params), np.nan)
    score_names = ("rel_rmse", "rmse", "spread", "crps", "coverage90", "param_rel_error")
    scores = {k: np.full((len(keys), shape[1]), np.nan) for k in score_names}
    for i, key in enumerate(keys):
        o = outcomes[key]
        if o.result is None or o.trace is None:
            continue
        assert o.trace.mean is not None and o.trace.std is not None  # keep_frames
        mean[i], std[i] = o.trace.mean.numpy(), o.trace.std.numpy()
        p_mean[i] = o.trace.params.mean(1).numpy()
        p_std[i] = o.trace.params.std(1).numpy()
        for k in score_names:
            scores[k][i] = o.result.scores[k].numpy()
    first = cases[keys[0]]
    grid = ("run", "time", "channel", ax0, ax1)
    data_vars: dict[str, Any] = {
        "mean": (grid, mean),
        "std": (grid, std),
        "param_mean": (("run", "time", "param"), p_mean),
        "param_std": (("run", "time", "param"), p_std),
        "true_params": (
            ("run", "param"),
            np.stack([cases[k].true_params.double().numpy() for k in keys]),
        ),
        "readings": (
            ("run", "time", "sensor", "channel"),
            np.stack([cases[k].readings.double().numpy() for k in keys]),
        ),
        # (sensor, axis), or (time, sensor, axis) for sensors that move.
        "sensor_points": (
            ("time", "sensor", "axis")[3 - first.points.ndim :],
            first.points.double().numpy(),
        ),
        **{k: (("run", "time"), v) for k, v in scores.items()},
    }
    store_index = split_indices(ds, first.split)
    coords = {
        "run": np.arange(len(keys)),
        "trajectory": ("run", np.array([int(store_index[p]) for p, _ in keys])),
        "seed": ("run", np.array([s for _, s in keys])),
        "time": ds["time"].values,
        "channel": ds["channel"].values,
        ax0: ds[ax0].values,
        ax1: ds[ax1].values,
        "param": ds["param"].values,
        "axis": [str(ax0), str(ax1)],
    }
    runs = xr.Dataset(data_vars, coords=coords)
    runs.attrs.update(
        {
            "method": summary["method"],
            "config": str(summary["config"]),
            "observations": str(setting.describe()),
            "latentda_version": __version__,
            "note": "trajectory is the store index; mean/std are over the ensemble members",
        }
    )
    return runs
