"""Writing a twin experiment's outputs: ``analysis.nc`` (xarray/netCDF) and ``metrics.json``.

Both files are written atomically, ``metrics.json`` last: its presence means the run finished.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from latentda import __version__
from latentda.experiments.twin import TwinResult
from latentda.io import atomic_write, write_json


def metrics_summary(result: TwinResult, cycles: int, wall_s: float) -> dict[str, Any]:
    """Time-mean scores after the burn-in plus timings and what they are averaged over."""
    means = result.time_means()
    return {
        **{k: means[k] for k in ("rmse_a", "rmse_f", "spread_a", "spread_f")},
        "crps_a": means["crps_a"],
        "coverage90_a": means["coverage90_a"],
        "wall_s": wall_s,
        "timings": {
            k: result.timings[k] for k in ("dynamics_s", "filter_s", "truth_s", "cycling_s")
        },
        "averaged_over": {
            "cycles": cycles - result.burn_in,
            "first_cycle": result.burn_in + 1,
            "trajectories": 1,
        },
    }


def analysis_dataset(result: TwinResult, dt: float, attrs: dict[str, Any]) -> xr.Dataset:
    """Per-cycle fields and scores as a Dataset with dims ``cycle``, ``x``, ``obs``."""
    cycle = np.arange(1, result.mean_a.shape[0] + 1)
    time = result.data.steps.numpy() * dt
    fields = {
        "truth": result.data.truth[1:],
        "mean_f": result.mean_f,
        "mean_a": result.mean_a,
        "std_a": result.std_a,
    }
    data_vars: dict[str, Any] = {k: (("cycle", "x"), v.double().numpy()) for k, v in fields.items()}
    data_vars["obs"] = (("cycle", "obs"), result.data.obs.double().numpy())
    for k, v in result.scores.items():
        data_vars[k] = (("cycle",), v.double().numpy())
    ds = xr.Dataset(data_vars, coords={"cycle": cycle, "time": ("cycle", time)})
    ds.attrs.update({k: str(v) for k, v in attrs.items()})
    ds.attrs["latentda_version"] = __version__
    return ds


def write_run(out: Path, summary: dict[str, Any], ds: xr.Dataset) -> None:
    """Write ``out/analysis.nc`` and then ``out/metrics.json``, each atomically (so
    ``metrics.json`` exists only for a finished run)."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "analysis.nc", lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))
    write_json(out / "metrics.json", summary)
