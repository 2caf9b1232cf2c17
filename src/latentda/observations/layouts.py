"""Sensor layouts on a 2-D grid: pure functions returning coordinates ``(m, 2)``.

Coordinates are float64 CPU tensors in the grid's own units and axis order (``(y, x)`` or
``(lat, lon)``), ready for :class:`~latentda.observations.grid.BilinearGrid`. ``axes`` is what
``FieldSystem.axes()`` returns (or two 1-D tensors), uniformly spaced; see
:class:`~latentda.observations.grid.UniformAxis` for the domain of periodic and non-periodic
axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from latentda.errors import ConfigError
from latentda.observations.grid import (
    AxesLike,
    canonical_index,
    check_points,
    parse_axes,
)


def _even_indices(n: int, k: int) -> Tensor:
    """``k`` evenly spaced fractional node indices on an axis of ``n`` nodes.

    If ``k`` divides ``n`` they are the nodes ``stride·i + ⌊(stride − 1)/2⌋`` (spacing
    ``stride = n/k`` also across a periodic seam); otherwise the centres of ``k`` equal blocks
    of the cells, ``(i + ½)·n/k − ½``, which are evenly spaced but may fall between nodes.
    """
    if not 1 <= k <= n:
        raise ConfigError(f"regular sub-grid needs 1 <= sensors per axis <= {n}, got {k}")
    i = torch.arange(k, dtype=torch.float64)
    if n % k == 0:
        stride = n // k
        return i * stride + (stride - 1) // 2
    return (i + 0.5) * (n / k) - 0.5


def regular_subgrid(axes: AxesLike, ny: int, nx: int) -> Tensor:
    """A regular ``ny × nx`` array of sensors spread evenly over the grid.

    The LD-EnSF paper's layout: 10×10 sensors on a 150×150 grid sit on the nodes
    ``7, 22, …, 142`` of each axis (every 15th node, equal margins). When the sensor count
    does not divide the axis size the sensors are still evenly spaced, between nodes.

    Returns
    -------
    Tensor
        ``(ny·nx, 2)``, row-major: sensor ``a·nx + b`` is row ``a`` (first axis), column ``b``.
    """
    ay, ax = parse_axes(axes)
    yy, xx = torch.meshgrid(
        ay.to_coord(_even_indices(ay.size, int(ny))),
        ax.to_coord(_even_indices(ax.size, int(nx))),
        indexing="ij",
    )
    return torch.stack([yy.reshape(-1), xx.reshape(-1)], -1)


def uniform_random(
    axes: AxesLike, m: int, gen: torch.Generator, periodic: tuple[bool, bool]
) -> Tensor:
    """``m`` sensors drawn independently and uniformly over the domain.

    A periodic axis is sampled over one full period ``[origin, origin + size·step)``; a
    non-periodic axis over its node span (first to last node), so no sensor lies outside the
    physical domain even when the end nodes are its boundary (e.g. grids including the poles).

    Parameters
    ----------
    gen
        CPU generator; the same seed gives the same layout.

    Returns
    -------
    Tensor
        ``(m, 2)``.
    """
    if int(m) < 1:
        raise ConfigError(f"number of sensors must be >= 1, got {m}")
    axs = parse_axes(axes)
    u = torch.rand(int(m), 2, generator=gen, dtype=torch.float64)
    cols = []
    for k, (axis, per) in enumerate(zip(axs, periodic, strict=True)):
        span = float(axis.size) if per else float(axis.size - 1)
        cols.append(axis.to_coord(u[:, k] * span))
    return torch.stack(cols, -1)


def from_file(path: str | Path) -> Tensor:
    """Sensor coordinates from a ``.npy`` array or a ``.csv``/``.txt`` file with two columns.

    CSV: comma-separated, ``#`` comments and one header line allowed.

    Returns
    -------
    Tensor
        ``(m, 2)``; whether the points lie inside a grid is checked by the operator.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"sensor file not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except ValueError as exc:
            raise ConfigError(f"cannot read sensor file {p}: {exc}") from exc
    elif suffix in (".csv", ".txt"):
        arr = None
        # A header line (e.g. "y,x") does not parse as numbers: retry without it.
        for skip in (0, 1):
            try:
                arr = np.loadtxt(p, delimiter=",", comments="#", ndmin=2, skiprows=skip)
                break
            except ValueError as exc:
                err = exc
        if arr is None:
            raise ConfigError(f"cannot read sensor file {p} as numeric CSV: {err}")
    else:
        raise ConfigError(f"sensor file must be .csv, .txt or .npy, got {p.name}")
    if not np.issubdtype(arr.dtype, np.number) or arr.ndim != 2 or arr.shape[1] != 2:
        raise ConfigError(
            f"sensor file {p} must hold an (m, 2) numeric array, got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ConfigError(f"sensor file {p} holds no sensors")
    if not np.isfinite(arr).all():
        raise ConfigError(f"sensor file {p} contains NaN or infinite coordinates")
    return torch.from_numpy(arr.astype(np.float64))


def moving(
    points: Tensor | Sequence[Sequence[float]],
    velocity: Tensor | Sequence[float],
    t: float,
    axes: AxesLike,
    periodic: tuple[bool, bool],
) -> Tensor:
    """Positions at time ``t`` of sensors drifting at constant velocity from ``points``.

    ``p(t) = p(0) + v·t``, then on a periodic axis wrapped into the base period, and on a
    non-periodic axis reflected at the domain edges (the outer cell faces, where
    :class:`~latentda.observations.grid.BilinearGrid` stops accepting points), so a sensor
    bounces back instead of leaving the domain.

    Parameters
    ----------
    points
        Positions at ``t = 0``, ``(m, 2)``, inside the domain.
    velocity
        ``(2,)`` shared by all sensors, or ``(m, 2)`` per sensor, in coordinate units per time.
    t
        Time since the start.

    Returns
    -------
    Tensor
        ``(m, 2)``.
    """
    p = check_points(points)
    v = torch.as_tensor(velocity).detach().to("cpu", torch.float64)
    if v.shape not in ((2,), tuple(p.shape)) or not torch.isfinite(v).all():
        raise ConfigError(
            f"velocity must be finite with shape (2,) or {tuple(p.shape)}, got {tuple(v.shape)}"
        )
    if not math.isfinite(float(t)):
        raise ConfigError(f"time must be finite, got {t}")
    axs = parse_axes(axes)
    cols = []
    for k, (axis, per) in enumerate(zip(axs, periodic, strict=True)):
        s0 = canonical_index(axis.to_index(p[:, k]), axis, bool(per))
        s = s0 + (v[..., k] * float(t)) / axis.step
        if per:
            s = torch.remainder(s, float(axis.size))
        else:
            # Mirror at both faces: a triangle wave of period 2L on [lo, lo + L].
            lo, hi = axis.index_bounds(False)
            length = hi - lo
            r = torch.remainder(s - lo, 2 * length)
            s = lo + torch.where(r > length, 2 * length - r, r)
        cols.append(axis.to_coord(s))
    return torch.stack(cols, -1)


def fraction_to_count(fraction: float, H: int, W: int) -> int:
    """Number of sensors for a density given as a fraction of the ``H·W`` grid points.

    ``fraction = 0.001`` means 0.1 % of the points; the count is ``round(fraction·H·W)``
    (half up), at least 1. The paper's 10×10 sensors on 150² are ``fraction ≈ 0.0044``.
    """
    f = float(fraction)
    if not (0.0 < f <= 1.0):
        raise ConfigError(
            f"sensor fraction must be in (0, 1] (a fraction, not a percentage), got {fraction}"
        )
    if int(H) < 1 or int(W) < 1:
        raise ConfigError(f"grid size must be positive, got {H}×{W}")
    return max(1, math.floor(f * int(H) * int(W) + 0.5))
