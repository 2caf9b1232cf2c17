"""Figures (matplotlib, Agg backend: files only, no display needed)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from torch import Tensor  # noqa: E402

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
    return _save(fig, out)


def _colour_scale(values: np.ndarray) -> dict[str, object]:
    """A zero-centred diverging map for signed fields (velocities, anomalies), a sequential
    one for fields of one sign (such as a total depth), so structure is never washed out."""
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    if lo < 0.0 < hi:
        lim = max(-lo, hi)
        return {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim}
    return {"cmap": "viridis", "vmin": lo, "vmax": hi if hi > lo else lo + 1.0}


def _save(fig: plt.Figure, out: str | os.PathLike[str]) -> Path:
    """Write ``fig`` atomically in the format of ``out``'s suffix and close it."""
    dest = Path(out)
    suffix = dest.suffix.lstrip(".") or "png"
    try:
        atomic_write(dest, lambda tmp: fig.savefig(tmp, format=suffix, dpi=110))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot write figure {dest}: {exc}") from None
    finally:
        plt.close(fig)
    return dest


def plot_final_fields(
    ds: xr.Dataset,
    truth: Tensor,
    means: dict[str, Tensor],
    out: str | os.PathLike[str],
    title: str,
    channel: int = 0,
) -> Path:
    """One row per method: truth, analysis ensemble mean and error (mean − truth) of one
    channel at one frame.

    Parameters
    ----------
    ds
        The store (grid axes, channel names).
    truth
        True fields ``(C, H, W)``.
    means
        Method label -> ensemble-mean fields ``(C, H, W)``, same units.
    out
        Image file.
    title
        Figure title.
    channel
        Which channel to draw.
    """
    ax0, ax1 = ds["fields"].dims[-2:]
    y, x = ds[ax0].values, ds[ax1].values
    flip = y[0] > y[-1]  # latitude stored north to south: draw north at the top
    if flip:
        y = y[::-1]
    extent = (float(x[0]), float(x[-1]), float(y[0]), float(y[-1]))
    name = str(ds["channel"].values[channel])
    rows = max(len(means), 1)
    fig, axes = plt.subplots(rows, 3, figsize=(11.5, 3.2 * rows), squeeze=False)
    true = truth[channel].numpy()
    scale = _colour_scale(true)
    for row, (label, mean) in zip(axes, means.items(), strict=False):
        err = mean[channel].numpy() - true
        lim = float(np.abs(err).max()) or 1.0
        panels = [
            ("truth", true, scale),
            (f"{label}: analysis mean", mean[channel].numpy(), scale),
            (f"{label}: error", err, {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim}),
        ]
        for ax, (head, values, colours) in zip(row, panels, strict=True):
            im = ax.imshow(
                values[::-1] if flip else values,
                origin="lower",
                extent=extent,
                aspect="auto",
                **colours,
            )
            ax.set_title(head, fontsize=9)
            ax.set_xlabel(str(ax1))
            ax.set_ylabel(str(ax0))
            fig.colorbar(im, ax=ax, shrink=0.85)
    fig.suptitle(f"{title}: {name} at the final frame")
    fig.tight_layout()
    return _save(fig, out)


def plot_error_curves(
    times: np.ndarray,
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    out: str | os.PathLike[str],
    title: str,
) -> Path:
    """Relative RMSE of the ensemble mean against time, one line (mean) and band (± std over
    runs) per method; ``curves[label] = (mean (T,), std (T,))``, ``times`` ``(T,)``."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, (mean, std) in curves.items():
        (line,) = ax.plot(times, mean, label=label)
        ax.fill_between(times, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("time")
    ax.set_ylabel("relative RMSE of the ensemble mean")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


def plot_params(
    ds: xr.Dataset,
    times: np.ndarray,
    estimates: dict[str, Tensor],
    truth: Tensor,
    out: str | os.PathLike[str],
    title: str,
) -> Path:
    """Parameter estimates against time: per parameter, each method's ensemble mean ± std
    (``estimates[label]`` ``(T, N, p)``) and the true value (``truth`` ``(p,)``)."""
    names = [str(p) for p in ds["param"].values]
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 3.6), squeeze=False)
    for k, (ax, pname) in enumerate(zip(axes[0], names, strict=True)):
        for label, ens in estimates.items():
            mean, std = ens[..., k].mean(1).numpy(), ens[..., k].std(1).numpy()
            (line,) = ax.plot(times, mean, label=label)
            ax.fill_between(times, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        ax.axhline(float(truth[k]), color="k", linestyle="--", label="truth")
        ax.set_xlabel("time")
        ax.set_ylabel(pname)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, out)
