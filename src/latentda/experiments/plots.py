"""Figures (matplotlib, Agg backend: files only, no display needed)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from latentda.errors import ConfigError  # noqa: E402
from latentda.io import atomic_write  # noqa: E402


def plot_frame(ds: xr.Dataset, trajectory: int, frame: int, out: str | os.PathLike[str]) -> Path:
    """Draw every channel of one frame of a dataset side by side; returns the image path.

    ``ds`` is a store opened by :func:`latentda.data.open_dataset`; ``frame`` indexes the
    ``time`` axis. The image format follows the suffix of ``out`` (png, pdf, svg, ...).
    """
    n, t = ds.sizes["trajectory"], ds.sizes["time"]
    if not 0 <= trajectory < n:
        raise ConfigError(f"--trajectory must lie in [0, {n - 1}], got {trajectory}")
    if not 0 <= frame < t:
        raise ConfigError(f"--frame must lie in [0, {t - 1}], got {frame}")
    field = ds["fields"].isel(trajectory=trajectory, time=frame)
    ax0, ax1 = field.dims[-2:]
    y, x = ds[ax0].values, ds[ax1].values
    channels = [str(c) for c in ds["channel"].values]
    fig, axes = plt.subplots(1, len(channels), figsize=(4.2 * len(channels), 3.6), squeeze=False)
    if y[0] > y[-1]:  # e.g. latitude stored north to south: draw north at the top
        y, field = y[::-1], field.isel({ax0: slice(None, None, -1)})
    for ax, name, values in zip(axes[0], channels, field.values, strict=True):
        im = ax.imshow(
            values,
            origin="lower",
            extent=(float(x[0]), float(x[-1]), float(y[0]), float(y[-1])),
            aspect="auto",
            **_colour_scale(values),
        )
        ax.set_title(name)
        ax.set_xlabel(ax1)
        ax.set_ylabel(ax0)
        fig.colorbar(im, ax=ax, shrink=0.85)
    params = ", ".join(
        f"{p}={v:.4g}"
        for p, v in zip(ds["param"].values, ds["params"].values[trajectory], strict=True)
    )
    time = float(ds["time"].values[frame])
    fig.suptitle(f"trajectory {trajectory} ({params}), t = {time:.4g}")
    fig.tight_layout()
    dest = Path(out)
    suffix = dest.suffix.lstrip(".") or "png"
    try:
        atomic_write(dest, lambda tmp: fig.savefig(tmp, format=suffix, dpi=110))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot write figure {dest}: {exc}") from None
    finally:
        plt.close(fig)
    return dest


def _colour_scale(values: np.ndarray) -> dict[str, object]:
    """A zero-centred diverging map for signed fields (velocities, anomalies), a sequential
    one for fields of one sign (such as a total depth), so structure is never washed out."""
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    if lo < 0.0 < hi:
        lim = max(-lo, hi)
        return {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim}
    return {"cmap": "viridis", "vmin": lo, "vmax": hi if hi > lo else lo + 1.0}
