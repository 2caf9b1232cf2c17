"""One call per twin experiment: validate, run, score, optionally write outputs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from latentda.experiments.config import TwinConfig, merge, parse_overrides, twin_config
from latentda.experiments.results import analysis_dataset, metrics_summary, write_run
from latentda.experiments.twin import TwinData, TwinResult
from latentda.io import prepare_output
from latentda.schema import to_dict


def run_twin(
    config: TwinConfig,
    out: str | Path | None = None,
    progress: bool = False,
    data: TwinData | None = None,
) -> tuple[dict[str, Any], TwinResult]:
    """Run the twin experiment ``config``.

    Parameters
    ----------
    config
        A validated configuration (see :func:`latentda.experiments.twin_config`).
    out
        Directory for ``metrics.json`` and ``analysis.nc``; nothing is written if ``None``.
    progress
        Show a progress bar over cycles.
    data
        Pre-computed truth and observations (to run several methods on the same data).

    Returns
    -------
    (summary, result)
        The ``metrics.json`` content and the full per-cycle result.
    """
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        prepare_output(out_dir)
    t0 = time.perf_counter()
    experiment = config.build()
    result = experiment.run(data=data, progress=progress)
    wall = time.perf_counter() - t0
    summary = metrics_summary(result, config.cycles, wall)
    summary["method"] = config.method.name  # type: ignore[attr-defined]
    summary["ensemble_size"] = experiment.ensemble_size
    summary["seed"] = config.seed
    summary["config"] = to_dict(config)
    if out_dir is not None:
        attrs = {"method": summary["method"], "seed": config.seed, "config": summary["config"]}
        ds = analysis_dataset(result, experiment.system.dt, attrs)
        write_run(out_dir, summary, ds)
    return summary, result


def experiment_config(data: dict[str, Any], overrides: list[str] | None = None) -> Any:
    """Validate a ``latentda run`` mapping (plus ``KEY=VALUE`` overrides): a field twin
    experiment on stored trajectories (:class:`~.field_run.FieldRunConfig`) when it names
    a store with ``data``, else a twin experiment on a simulated system
    (:class:`~.config.TwinConfig`)."""
    merged = merge(data, parse_overrides(overrides or []))
    if "data" in merged:
        from latentda.experiments.field_run import field_run_config  # torch-heavy imports

        return field_run_config(merged)
    return twin_config(merged)
