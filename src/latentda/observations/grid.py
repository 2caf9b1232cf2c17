"""Sensors at arbitrary coordinates reading gridded fields by bilinear interpolation.

A gridded state is a field ``(..., C, H, W)``; filters see it flattened to ``(..., C·H·W)``
(row-major, so the flat index of ``(c, i, j)`` is ``c·H·W + i·W + j``). The two grid axes are
1-D coordinate tensors with uniform spacing, as returned by ``FieldSystem.axes()``: ``{"y": (H,),
"x": (W,)}`` on the plane or ``{"lat": (H,), "lon": (W,)}`` on the sphere. Sensor coordinates
are given in the same units and order, ``(m, 2)`` as ``(y, x)`` or ``(lat, lon)``.

Output ordering (the convention of this module, also used by :func:`noise_std_from_level`):
readings are **sensor-major**, ``y[..., k·C_obs + c]`` is channel ``channels[c]`` at sensor
``k``, so ``y.reshape(..., m, C_obs)`` separates sensors from channels (DESIGN: ``(…, m*C)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from latentda.errors import ConfigError
from latentda.observations.operators import ObservationOperator

#: Grid axes: a mapping such as ``System.axes()`` (its two values in order) or two 1-D tensors.
AxesLike = Mapping[str, Tensor] | Sequence[Tensor]

# Relative tolerance on "uniform spacing": float32 coordinates (``linspace``) are off by ~1e-7.
_SPACING_RTOL = 1e-5
# Index-space tolerance: a sensor within 1e-6 cells of a node reads the node exactly, and
# one within 1e-6 cells of a domain edge is inside (both absorb coordinate round-off).
_INDEX_ATOL = 1e-6


@dataclass(frozen=True)
class UniformAxis:
    """One uniformly spaced grid axis, node ``i`` at ``origin + i·step`` for ``i = 0..size−1``.

    ``step`` may be negative (e.g. latitude running from north to south). In *index units*
    ``s = (coord − origin) / step`` the nodes are the integers ``0..size−1``:

    - a periodic axis has period ``size·|step|`` and covers ``s ∈ [0, size)``;
    - a non-periodic axis covers the cells around its nodes, ``s ∈ [−½, size − ½]`` (the
      physical domain of a cell-centred grid); readings there are clamped to the edge nodes.
    """

    origin: float
    step: float
    size: int

    @classmethod
    def from_tensor(cls, axis: Tensor, name: str = "axis") -> UniformAxis:
        """Validate a 1-D coordinate tensor ``(n,)``, ``n >= 2``, with uniform spacing."""
        a = torch.as_tensor(axis).detach().to("cpu", torch.float64)
        if a.ndim != 1 or a.numel() < 2:
            raise ConfigError(
                f"grid axis {name!r} must be 1-D with >= 2 nodes, got {tuple(a.shape)}"
            )
        if not torch.isfinite(a).all():
            raise ConfigError(f"grid axis {name!r} has non-finite coordinates")
        n = int(a.numel())
        # The end-to-end step is the least sensitive to per-node round-off.
        step = float(a[-1] - a[0]) / (n - 1)
        if step == 0.0:
            raise ConfigError(f"grid axis {name!r} has zero spacing")
        if float((a.diff() - step).abs().max()) > _SPACING_RTOL * abs(step):
            raise ConfigError(f"grid axis {name!r} must have uniform spacing")
        return cls(float(a[0]), step, n)

    @property
    def period(self) -> float:
        """Length of the axis when it is periodic, ``size·|step|``."""
        return self.size * abs(self.step)

    def to_index(self, coord: Tensor) -> Tensor:
        """Coordinates (any shape) -> fractional node indices ``s`` (float64)."""
        return (coord.to(torch.float64) - self.origin) / self.step

    def to_coord(self, index: Tensor) -> Tensor:
        """Fractional node indices -> coordinates (float64)."""
        return self.origin + index.to(torch.float64) * self.step

    def index_bounds(self, periodic: bool) -> tuple[float, float]:
        """The domain in index units: ``[0, size)`` if periodic, else ``[−½, size − ½]``."""
        return (0.0, float(self.size)) if periodic else (-0.5, self.size - 0.5)


def parse_axes(axes: AxesLike) -> tuple[UniformAxis, UniformAxis]:
    """Two :class:`UniformAxis` from ``System.axes()`` (values in order) or two tensors."""
    if isinstance(axes, Mapping):
        names, tensors = list(axes.keys()), list(axes.values())
    else:
        tensors = list(axes)
        names = [f"axis {i}" for i in range(len(tensors))]
    if len(tensors) != 2:
        raise ConfigError(f"a gridded field needs exactly 2 axes, got {len(tensors)}")
    return UniformAxis.from_tensor(tensors[0], str(names[0])), UniformAxis.from_tensor(
        tensors[1], str(names[1])
    )


def check_points(points: Tensor | Sequence[Sequence[float]]) -> Tensor:
    """Sensor coordinates as a finite float64 CPU tensor ``(m, 2)``, ``m >= 1``."""
    p = torch.as_tensor(points).detach().to("cpu", torch.float64)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] == 0:
        raise ConfigError(f"sensor points must have shape (m, 2) with m >= 1, got {tuple(p.shape)}")
    if not torch.isfinite(p).all():
        raise ConfigError("sensor points must be finite")
    return p


def canonical_index(
    s: Tensor, axis: UniformAxis, periodic: bool, what: str = "sensor points"
) -> Tensor:
    """Index coordinates ``s`` wrapped into ``[0, size)`` on a periodic axis; on a
    non-periodic one checked to lie in ``[−½, size − ½]`` (raises :class:`ConfigError`)."""
    if periodic:
        return torch.remainder(s, float(axis.size))
    lo, hi = axis.index_bounds(False)
    bad = (s < lo - _INDEX_ATOL) | (s > hi + _INDEX_ATOL)
    if bad.any():
        first = int(bad.nonzero()[0, 0])
        lo_c, hi_c = sorted((axis.origin + lo * axis.step, axis.origin + hi * axis.step))
        raise ConfigError(
            f"{int(bad.sum())} {what} lie outside the non-periodic domain "
            f"[{lo_c:g}, {hi_c:g}], e.g. coordinate {float(axis.to_coord(s[first])):g}"
        )
    return s


def _neighbours(s: Tensor, axis: UniformAxis, periodic: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Lower/upper node indices ``(i0, i1)`` (long) and upper weight ``w ∈ [0, 1]`` such that
    linear interpolation along this axis is ``(1 − w)·f[i0] + w·f[i1]``."""
    n = axis.size
    # Snap near-node sensors onto the node so they read it exactly (w is then exactly 0).
    r = torch.round(s)
    s = torch.where((s - r).abs() <= _INDEX_ATOL, r, s)
    if periodic:
        base = torch.floor(s)
        w = s - base
        # remainder() may return exactly ``n`` for tiny negative s; mod again to stay in range.
        i0 = torch.remainder(base, n).long()
        i1 = torch.remainder(i0 + 1, n)
    else:
        # Clamp to the node span (constant extrapolation into the edge half-cells); the last
        # node is reached as i0 = n − 2 with w = 1, so i1 = i0 + 1 always exists.
        s = s.clamp(0.0, float(n - 1))
        i0 = torch.floor(s).clamp(max=n - 2)
        w = s - i0
        i0 = i0.long()
        i1 = i0 + 1
    return i0, i1, w


class BilinearGrid(ObservationOperator):
    """Bilinear interpolation of chosen channels of a flattened field at arbitrary sensors.

    With fractional node indices ``(s, t)`` of a sensor, ``i = ⌊s⌋``, ``j = ⌊t⌋``,
    ``α = s − i``, ``β = t − j``, channel ``c`` reads

    .. math::
        H_c(x) = (1−α)(1−β) f_c[i, j] + (1−α)β f_c[i, j+1] + α(1−β) f_c[i+1, j] + αβ f_c[i+1, j+1]

    where ``f = x.reshape(..., C, H, W)``. The operator is linear: ``__call__`` gathers the
    four neighbours and weights them, :meth:`vjp` is its exact adjoint (a scatter-add). It is
    exact for fields that are affine in each axis, and a sensor on a node reads that node.

    Parameters
    ----------
    points
        Sensor coordinates ``(m, 2)`` in the grid's units and axis order (``(y, x)`` or
        ``(lat, lon)``).
    shape
        Field shape ``(C, H, W)``; states are ``(..., C·H·W)``.
    axes
        The two grid axes, ``System.axes()`` or two tensors ``(H,)`` and ``(W,)``, uniformly
        spaced (either direction).
    periodic
        Per axis: periodic axes wrap (period ``size × spacing``, e.g. ``2π`` for Kolmogorov,
        ``360°`` for longitude); non-periodic axes (tsunami, latitude) clamp to the edge nodes
        and reject sensors outside the cells around the nodes with :class:`ConfigError`.
    channels
        Indices of the observed channels, in output order; ``None`` observes all ``C``.

    Notes
    -----
    ``in_dim = C·H·W``, ``out_dim = m·C_obs``, outputs are sensor-major:
    ``y[..., k·C_obs + c]`` is channel ``channels[c]`` at sensor ``k``.
    """

    def __init__(
        self,
        points: Tensor | Sequence[Sequence[float]],
        shape: tuple[int, int, int],
        axes: AxesLike,
        periodic: tuple[bool, bool],
        channels: Sequence[int] | Tensor | None = None,
    ) -> None:
        if len(tuple(shape)) != 3 or min(int(s) for s in shape) < 1:
            raise ConfigError(f"field shape must be (C, H, W) with positive sizes, got {shape}")
        C, H, W = (int(s) for s in shape)
        if len(tuple(periodic)) != 2:
            raise ConfigError(f"periodic must give one flag per axis, got {periodic}")
        ay, ax = parse_axes(axes)
        if (ay.size, ax.size) != (H, W):
            raise ConfigError(f"grid axes have sizes ({ay.size}, {ax.size}), field is {H}×{W}")
        chans = torch.arange(C) if channels is None else torch.as_tensor(channels).flatten()
        if chans.numel() == 0 or chans.is_floating_point():
            raise ConfigError("channels must be a non-empty list of integer indices")
        chans = chans.long()
        if int(chans.min()) < 0 or int(chans.max()) >= C:
            raise ConfigError(f"channel indices must lie in [0, {C - 1}], got {chans.tolist()}")
        if chans.unique().numel() != chans.numel():
            raise ConfigError(f"channel indices must be distinct, got {chans.tolist()}")

        pts = check_points(points)
        py, px = (bool(f) for f in periodic)
        sy = canonical_index(ay.to_index(pts[:, 0]), ay, py)
        sx = canonical_index(ax.to_index(pts[:, 1]), ax, px)
        iy0, iy1, wy = _neighbours(sy, ay, py)
        ix0, ix1, wx = _neighbours(sx, ax, px)

        # Per sensor: the four neighbours (i,j), (i,j+1), (i+1,j), (i+1,j+1) and their weights.
        cell = torch.stack([iy0 * W + ix0, iy0 * W + ix1, iy1 * W + ix0, iy1 * W + ix1], -1)
        wts = torch.stack([(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx], -1)
        m, n_obs = int(pts.shape[0]), int(chans.numel())
        # (m, C_obs, 4) -> (m·C_obs, 4): sensor-major output rows.
        idx = cell[:, None, :] + (chans * (H * W))[None, :, None]
        self._index = idx.reshape(m * n_obs * 4)
        self._weight = wts[:, None, :].expand(m, n_obs, 4).reshape(m * n_obs, 4).contiguous()

        self.shape = (C, H, W)
        self.channels = chans
        self.periodic = (py, px)
        self.n_sensors = m
        # Canonical sensor coordinates: wrapped into the base period on periodic axes.
        self.points = torch.stack([ay.to_coord(sy), ax.to_coord(sx)], -1)
        self.in_dim = C * H * W
        self.out_dim = m * n_obs

    def _buffers(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._index.to(x.device), self._weight.to(device=x.device, dtype=x.dtype)

    def __call__(self, x: Tensor) -> Tensor:
        """Read flattened fields ``(..., C·H·W)``; returns ``(..., m·C_obs)`` sensor-major."""
        self._check(x)
        idx, w = self._buffers(x)
        vals = x[..., idx].unflatten(-1, (self.out_dim, 4))
        return (vals * w).sum(-1)

    def vjp(self, x: Tensor, v: Tensor) -> Tensor:
        """Adjoint ``Hᵀ v``: ``v`` ``(..., m·C_obs)`` scattered onto ``(..., C·H·W)`` (exact, the
        Jacobian of a linear ``H`` does not depend on ``x``, whose shape and dtype it takes)."""
        self._check(x)
        if v.shape[-1] != self.out_dim:
            raise ConfigError(f"vjp expects vectors of size {self.out_dim}, got {v.shape[-1]}")
        idx, w = self._buffers(x)
        contrib = (v.to(x.dtype)[..., :, None] * w).flatten(-2)
        out = torch.zeros(
            torch.broadcast_shapes(x.shape[:-1], v.shape[:-1]) + (self.in_dim,),
            dtype=x.dtype,
            device=x.device,
        )
        return out.index_add_(-1, idx, contrib.expand(out.shape[:-1] + contrib.shape[-1:]))

    @property
    def locations(self) -> Tensor:
        """Coordinates of each reading ``(m·C_obs, 2)``: sensor points repeated per channel."""
        return self.points.repeat_interleave(int(self.channels.numel()), dim=0)

    def readings_by_sensor(self, y: Tensor) -> Tensor:
        """View readings ``(..., m·C_obs)`` as ``(..., m, C_obs)``."""
        return y.unflatten(-1, (self.n_sensors, int(self.channels.numel())))


def noise_std_from_level(level: float, channel_std: Tensor | Sequence[float], m: int) -> Tensor:
    """Additive-noise σ per reading: ``σ = level × std_c`` (DESIGN 4, level 0.1 = "10 % noise").

    Parameters
    ----------
    level
        Relative noise level, ``> 0``.
    channel_std
        Per-channel standard deviation of the training data ``(C_obs,)``, in the operator's
        ``channels`` order (select ``std[channels]`` from full-field statistics first).
    m
        Number of sensors.

    Returns
    -------
    Tensor
        ``(m·C_obs,)`` float64, sensor-major like :class:`BilinearGrid` outputs:
        ``[level·std_0, …, level·std_{C_obs−1}]`` repeated ``m`` times.
    """
    std = torch.as_tensor(channel_std, dtype=torch.float64).detach().cpu().flatten()
    if not (level > 0 and float(level) < float("inf")):
        raise ConfigError(f"noise level must be finite and > 0, got {level}")
    if std.numel() == 0 or not (torch.isfinite(std).all() and (std > 0).all()):
        raise ConfigError("channel_std must be a non-empty vector of finite values > 0")
    if int(m) < 1:
        raise ConfigError(f"number of sensors must be >= 1, got {m}")
    return (float(level) * std).repeat(int(m))
