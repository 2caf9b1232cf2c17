"""Tsunami: linear-momentum shallow water on a closed square basin (Arakawa C-grid).

Equations (DESIGN section 3), on ``[0, L]²`` with still-water depth ``H(y, x) > 0``:

.. math::
    ∂η/∂t + ∇·(h u) = 0,\\qquad h = H + η,

    ∂u/∂t = −g ∂η/∂x + f v,\\qquad ∂v/∂t = −g ∂η/∂y − f u,\\qquad f = f_0 + β (y − L/2),

with closed walls (zero normal velocity) and an optional sponge layer along the walls.

Grid and storage. ``n × n`` cells of side ``dx = L/n``; a state is ``(…, 3, n, n)`` with channels
``(u, v, eta)`` stored staggered (Arakawa C-grid), index ``[j, i]`` = row ``j`` (``y``), column
``i`` (``x``):

- ``eta[j, i]`` at the cell centre ``(y, x) = ((j + ½)dx, (i + ½)dx)``;
- ``u[j, i]`` on the east face of cell ``(j, i)``, ``((j + ½)dx, (i + 1)dx)``; the last column is
  the east wall and always 0; the west-wall face ``x = 0`` is not stored (implicitly 0);
- ``v[j, i]`` on the north face, ``((j + 1)dx, (i + ½)dx)``; the last row is the north wall and
  always 0; the south-wall face ``y = 0`` is implicit.

So relative to the cell centres ``u`` sits half a cell east and ``v`` half a cell north
(:data:`CHANNEL_OFFSETS`); :meth:`Tsunami.channel_axes` and :meth:`Tsunami.channel_coords` give
each channel's true positions, for observers that read staggered channels.

Time stepping: forward–backward, per sub-step of length ``τ``

1. continuity, flux form with upwind face depth:
   ``η ← η − τ/dx·(F_e − F_w + F_n − F_s)``, ``F = u·h_up`` with ``h_up`` the total depth of the
   cell the face velocity comes from. The fluxes telescope, so ``Σ η dx²`` is conserved to
   round-off with closed walls;
2. momentum with the *new* ``η``, then the Coriolis terms in the energy-neutral C-grid form
   (see :func:`coriolis_u` and :func:`coriolis_v`), ``u`` first with the old ``v``, then ``v`` with
   the new ``u`` (a symplectic-Euler rotation, neutral — neither damping nor growth — for
   ``f τ < 2``; here ``f τ ≤ 10⁻²``).

The sub-step is ``τ ≤ cfl·dx/√(g H_max)`` (``cfl = 0.1``), chosen so that a requested interval is
an integer number of equal sub-steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from latentda.errors import ConfigError

#: Grid size ``n`` per named scale.
SIZES: dict[str, int] = {"ci": 32, "bench": 64, "paper": 150}

#: Position of each channel relative to its cell centre, in cells ``(Δy, Δx)``.
CHANNEL_OFFSETS: dict[str, tuple[float, float]] = {
    "u": (0.0, 0.5),
    "v": (0.5, 0.0),
    "eta": (0.0, 0.0),
}


def face_fluxes(u: Tensor, v: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """Upwind volume fluxes per unit width through east and north faces.

    ``F_x[j, i] = u[j, i]·(h[j, i] if u > 0 else h[j, i+1])``, likewise ``F_y`` with ``v``.
    All inputs and outputs are ``(…, n, n)`` in the storage layout of the module docstring.
    """
    # The padded wall column/row is never used: the wall velocity is 0, so is its flux.
    h_east = F.pad(h[..., :, 1:], (0, 1))
    h_north = F.pad(h[..., 1:, :], (0, 0, 0, 1))
    return u * torch.where(u > 0, h, h_east), v * torch.where(v > 0, h, h_north)


def flux_divergence(fx: Tensor, fy: Tensor, dx: float) -> Tensor:
    """``∇·F`` per cell, ``((F_e − F_w) + (F_n − F_s))/dx``, ``(…, n, n)``; wall fluxes are 0."""
    dfx = fx - F.pad(fx[..., :, :-1], (1, 0))
    dfy = fy - F.pad(fy[..., :-1, :], (0, 0, 1, 0))
    # One commutative sum of the two directions keeps x↔y reflections exact in floating point.
    return (dfx + dfy) / dx


def pressure_gradient(eta: Tensor, gravity: float, dx: float) -> tuple[Tensor, Tensor]:
    """``(g ∂η/∂x at u-faces, g ∂η/∂y at v-faces)``, each ``(…, n, n)``, 0 on the wall faces."""
    gx = F.pad(eta[..., :, 1:] - eta[..., :, :-1], (0, 1))
    gy = F.pad(eta[..., 1:, :] - eta[..., :-1, :], (0, 0, 0, 1))
    return gx * (gravity / dx), gy * (gravity / dx)


def v_to_u(w: Tensor) -> Tensor:
    """Four-point average of a v-point field onto u-points, ``(…, n, n) → (…, n, n)``.

    ``A(w)[j, i] = ¼(w[j, i] + w[j, i+1] + w[j−1, i] + w[j−1, i+1])`` with the south-wall
    row ``w[−1, ·] = 0``; 0 on the east-wall column. Its adjoint is :func:`u_to_v`.
    """
    p = F.pad(w, (0, 1, 1, 0))  # p[j + 1, i] = w[j, i]; zero south row and east column
    avg = 0.25 * ((p[..., 1:, :-1] + p[..., 1:, 1:]) + (p[..., :-1, :-1] + p[..., :-1, 1:]))
    return F.pad(avg[..., :, :-1], (0, 1))


def u_to_v(w: Tensor) -> Tensor:
    """Four-point average of a u-point field onto v-points, the adjoint of :func:`v_to_u`.

    ``Aᵀ(w)[j, i] = ¼(w[j, i] + w[j+1, i] + w[j, i−1] + w[j+1, i−1])`` with the west-wall
    column ``w[·, −1] = 0``; 0 on the north-wall row.
    """
    p = F.pad(w, (1, 0, 0, 1))  # p[j, i + 1] = w[j, i]; zero west column and north row
    avg = 0.25 * ((p[..., :-1, 1:] + p[..., 1:, 1:]) + (p[..., :-1, :-1] + p[..., 1:, :-1]))
    return F.pad(avg[..., :-1, :], (0, 0, 0, 1))


def coriolis_u(v: Tensor, f_v: Tensor) -> Tensor:
    """``+f v`` at u-points as ``A(f_v v)``: ``f`` sits at v-points and is averaged with ``v``.

    With :func:`coriolis_v` the pair is skew-adjoint, ``Σ u·A(f v) − Σ v·f·Aᵀu = 0``, so the
    Coriolis force does no work on the grid even on the β-plane (energy-conserving form).
    """
    return v_to_u(f_v * v)


def coriolis_v(u: Tensor, f_v: Tensor) -> Tensor:
    """``−f u`` at v-points as ``−f_v Aᵀ(u)``; ``f_v`` is ``(n, 1)`` (``f`` at v-point rows)."""
    return -f_v * u_to_v(u)


def sponge_rate(y: Tensor, x: Tensor, length: float, width: float, timescale: float) -> Tensor:
    """Relaxation rate ``σ = ((w − d)/w)²/T`` for wall distance ``d < w``, else 0, ``(ny, nx)``.

    ``y`` ``(ny,)`` and ``x`` ``(nx,)`` are the channel's own coordinates; ``d`` is the distance
    to the nearest wall. The quadratic ramp avoids reflections off the sponge's inner edge.
    """
    dy = torch.minimum(y, length - y)[:, None]
    dx = torch.minimum(x, length - x)[None, :]
    d = torch.minimum(dy, dx)
    return ((width - d).clamp(min=0.0) / width) ** 2 / timescale


@dataclass(frozen=True, eq=False)
class Tsunami:
    """Tsunami propagation from a Gaussian source in a closed square basin.

    The parameters ``u = (x_c, y_c)`` (metres) place the source; they only enter the initial
    state, the dynamics are autonomous. Instances compare by identity (a field may hold a
    tensor); compare :meth:`config` for equality of values.

    Parameters
    ----------
    n
        Cells per side; the state is ``(3, n, n)``.
    size
        Name of the scale this instance was built for (``ci``, ``bench``, ``paper`` or
        ``custom``); recorded in :meth:`config` only.
    length
        Side ``L`` of the square basin (m).
    depth
        Uniform still-water depth ``H`` (m), used when ``bathymetry`` is ``None``.
    bathymetry
        Optional still-water depth per cell ``(n, n)`` (m, all > 0; dry cells are not
        supported), ``[j, i]`` at cell centres. Overrides ``depth``. Stored as a float64 CPU
        tensor; any array-like (e.g. the nested list from :meth:`config`) is accepted.
    gravity
        ``g`` (m/s²).
    f0, beta
        β-plane Coriolis parameter ``f = f0 + beta (y − L/2)`` (1/s, 1/(m s)).
    amplitude, source_width
        Initial bump ``η₀ = A exp(−r²/(2σ²))`` with ``A`` (m) and ``σ`` (m).
    cfl
        Sub-step ``τ ≤ cfl·dx/√(g H_max)``.
    frame_dt
        Interval between saved frames (s); default ``6000/7 ≈ 857.142857`` s, so the 50
        intervals of 51 frames span ``300000/7 s ≈ 11.9 h``.
    n_frames, spinup_time
        Frames per trajectory and model time run before frame 0 (s).
    sponge_width, sponge_timescale
        Sponge layer within ``sponge_width`` (m) of the walls (0 = off) relaxing ``u, v, η``
        towards rest at the peak rate ``1/sponge_timescale`` (1/s). It absorbs mass.
    """

    n: int = 32
    size: str = "custom"
    length: float = 1.0e6
    depth: float = 100.0
    bathymetry: Tensor | None = None
    gravity: float = 9.81
    f0: float = 1.0e-4
    beta: float = 2.0e-11
    amplitude: float = 1.0
    source_width: float = 5.0e4
    cfl: float = 0.1
    frame_dt: float = 6000.0 / 7.0
    n_frames: int = 51
    spinup_time: float = 0.0
    sponge_width: float = 0.0
    sponge_timescale: float = 3600.0

    param_names: ClassVar[tuple[str, ...]] = ("x_c", "y_c")
    channel_names: ClassVar[tuple[str, ...]] = ("u", "v", "eta")
    #: A closed basin: neither axis wraps.
    periodic_axes: ClassVar[tuple[bool, bool]] = (False, False)

    def __post_init__(self) -> None:
        if self.n < 4:
            raise ConfigError(f"tsunami needs n >= 4, got {self.n}")
        positive = {
            "length": self.length,
            "depth": self.depth,
            "gravity": self.gravity,
            "source_width": self.source_width,
            "frame_dt": self.frame_dt,
            "sponge_timescale": self.sponge_timescale,
        }
        for key, value in positive.items():
            if not value > 0:
                raise ConfigError(f"tsunami needs {key} > 0, got {value}")
        if not 0 < self.cfl <= 1:
            raise ConfigError(f"tsunami needs 0 < cfl <= 1, got {self.cfl}")
        if self.n_frames < 1:
            raise ConfigError(f"tsunami needs n_frames >= 1, got {self.n_frames}")
        if self.spinup_time < 0:
            raise ConfigError(f"tsunami needs spinup_time >= 0, got {self.spinup_time}")
        if not 0 <= self.sponge_width < self.length / 2:
            raise ConfigError(
                f"tsunami needs 0 <= sponge_width < length/2, got {self.sponge_width}"
            )
        if self.bathymetry is not None:
            b = torch.as_tensor(self.bathymetry, dtype=torch.float64).detach().to("cpu").clone()
            if b.shape != (self.n, self.n):
                raise ConfigError(f"bathymetry must be ({self.n}, {self.n}), got {tuple(b.shape)}")
            if not (torch.isfinite(b).all() and (b > 0).all()):
                raise ConfigError("bathymetry must be finite and > 0 everywhere (no dry cells)")
            object.__setattr__(self, "bathymetry", b)

    @classmethod
    def from_size(cls, size: str, **overrides: Any) -> Tsunami:
        """The system at a named scale: ``ci`` (n = 32), ``bench`` (64), ``paper`` (150)."""
        if size not in SIZES:
            raise ConfigError(f"unknown tsunami size {size!r}; allowed: {', '.join(SIZES)}")
        allowed = [f.name for f in fields(cls) if f.name != "size"]
        bad = sorted(set(overrides) - set(allowed))
        if bad:
            raise ConfigError(f"unknown tsunami option(s) {bad}; allowed: {', '.join(allowed)}")
        return cls(**{"n": SIZES[size], **overrides, "size": size})

    # ----------------------------------------------------------------------- geometry
    @property
    def state_shape(self) -> tuple[int, ...]:
        return (3, self.n, self.n)

    @property
    def dx(self) -> float:
        """Cell side ``L/n`` (m)."""
        return self.length / self.n

    @property
    def dt(self) -> float:
        """Default ``step`` interval: the frame spacing (s)."""
        return self.frame_dt

    @property
    def domain_lengths(self) -> tuple[float, ...] | None:
        """``None``: the basin is closed, not periodic."""
        return None

    def depth_field(self) -> Tensor:
        """Still-water depth at cell centres ``(n, n)``, float64 CPU."""
        if self.bathymetry is not None:
            return self.bathymetry
        return torch.full((self.n, self.n), float(self.depth), dtype=torch.float64)

    def max_substep(self) -> float:
        """Largest sub-step ``cfl·dx/√(g H_max)`` (s)."""
        h_max = self.depth if self.bathymetry is None else float(self.bathymetry.max())
        return self.cfl * self.dx / math.sqrt(self.gravity * h_max)

    def substeps(self, dt: float) -> int:
        """Number of equal sub-steps ``step`` uses for an interval ``dt``."""
        # The relative slack stops round-off in dt/τ (e.g. 9.000000000001) adding a sub-step.
        return max(1, math.ceil(dt / self.max_substep() * (1 - 1e-12)))

    def axes(self) -> dict[str, Tensor]:
        """Cell-centre coordinates ``{"y": (n,), "x": (n,)}`` (m), float64."""
        c = (torch.arange(self.n, dtype=torch.float64) + 0.5) * self.dx
        return {"y": c, "x": c.clone()}

    def coords(self) -> Tensor:
        """Cell centres ``(n·n, 2)`` as ``(y, x)`` (m), row-major like a flattened ``(n, n)``
        field. These are η's positions; see :meth:`channel_coords` for ``u`` and ``v``."""
        yy, xx = torch.meshgrid(*self.axes().values(), indexing="ij")
        return torch.stack([yy.flatten(), xx.flatten()], -1)

    def channel_axes(self) -> dict[str, dict[str, Tensor]]:
        """Each channel's own grid axes, ``{"u": {"y": (n,), "x": (n,)}, "v": …, "eta": …}``:
        the cell centres shifted by :data:`CHANNEL_OFFSETS` (``u``: ``x = dx..L``; ``v``:
        ``y = dx..L``). Build a per-channel bilinear observer from these to read a staggered
        channel at its true positions."""
        c = self.axes()
        return {
            name: {"y": c["y"] + oy * self.dx, "x": c["x"] + ox * self.dx}
            for name, (oy, ox) in CHANNEL_OFFSETS.items()
        }

    def channel_coords(self) -> dict[str, Tensor]:
        """Each channel's ``(y, x)`` positions ``(n·n, 2)`` (m), row-major like :meth:`coords`."""
        out = {}
        for name, ax in self.channel_axes().items():
            yy, xx = torch.meshgrid(ax["y"], ax["x"], indexing="ij")
            out[name] = torch.stack([yy.flatten(), xx.flatten()], -1)
        return out

    def coriolis(self) -> Tensor:
        """``f`` at the v-point rows ``y = (j + 1)dx``, shape ``(n, 1)`` (1/s)."""
        y_v = self.channel_axes()["v"]["y"]
        return (self.f0 + self.beta * (y_v - self.length / 2))[:, None]

    # ----------------------------------------------------------------------- dynamics
    def step(
        self, x: Tensor, u: Tensor | None = None, dt: float | None = None, t: float = 0.0
    ) -> Tensor:
        """Advance states ``x`` ``(…, 3, n, n)`` by ``dt`` (default :attr:`frame_dt`) in
        :meth:`substeps` equal forward–backward sub-steps; ``u`` and ``t`` are unused (the
        parameters only set the initial state, the dynamics are autonomous). Wall faces of
        the input are reset to 0. Returns a new tensor of the same shape, dtype and device."""
        if tuple(x.shape[-3:]) != self.state_shape:
            raise ConfigError(f"tsunami states must be (..., 3, {self.n}, {self.n}), got {x.shape}")
        h = self.dt if dt is None else float(dt)
        if h < 0:
            raise ConfigError(f"tsunami step needs dt >= 0, got {h}")
        if h == 0:
            return x.clone()
        k = self.substeps(h)
        tau = h / k
        like = {"dtype": x.dtype, "device": x.device}
        depth = self.depth_field().to(**like)
        rotating = self.f0 != 0 or self.beta != 0
        f_v = self.coriolis().to(**like)
        damp = self._sponge_factors(tau, like)
        uu, vv, eta = x[..., 0, :, :], x[..., 1, :, :], x[..., 2, :, :]
        # Wall faces carry no flow; clearing them keeps mass exact for any input (e.g. an
        # ensemble analysis that put values there).
        uu = F.pad(uu[..., :, :-1], (0, 1))
        vv = F.pad(vv[..., :-1, :], (0, 0, 0, 1))
        g, dx = self.gravity, self.dx
        for _ in range(k):
            fx, fy = face_fluxes(uu, vv, depth + eta)
            eta = eta - tau * flux_divergence(fx, fy, dx)
            gx, gy = pressure_gradient(eta, g, dx)
            uu = uu - tau * gx
            if rotating:
                uu = uu + tau * coriolis_u(vv, f_v)
            vv = vv - tau * gy
            if rotating:
                vv = vv + tau * coriolis_v(uu, f_v)
            if damp is not None:
                uu, vv, eta = uu * damp[0], vv * damp[1], eta * damp[2]
        return torch.stack([uu, vv, eta], dim=-3)

    def _sponge_factors(self, tau: float, like: dict[str, Any]) -> Tensor | None:
        """Per-channel damping ``exp(−τσ)`` ``(3, n, n)``, or ``None`` without a sponge.

        The exponential is the exact solution of ``∂q/∂t = −σq`` over a sub-step, so the
        sponge is stable for any rate."""
        if self.sponge_width == 0:
            return None
        rates = [
            sponge_rate(ax["y"], ax["x"], self.length, self.sponge_width, self.sponge_timescale)
            for ax in self.channel_axes().values()
        ]
        return torch.exp(-tau * torch.stack(rates)).to(**like)

    # ----------------------------------------------------------------------- prior, states
    def param_bounds(self) -> Tensor:
        """Prior support of the source centre: the lower-left quadrant, ``(2, 2)`` float64."""
        return torch.tensor([[0.0, self.length / 2]] * 2, dtype=torch.float64)

    def sample_params(self, n: int, gen: torch.Generator) -> Tensor:
        """Source centres ``(n, 2)`` = ``(x_c, y_c)`` uniform on the lower-left quadrant
        ``[0, L/2]²`` (m), float64 on the generator's device."""
        u = torch.rand(n, 2, generator=gen, dtype=torch.float64, device=gen.device)
        return u * (self.length / 2)

    def initial_state(
        self, u: Tensor, gen: torch.Generator | None = None, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """Fluid at rest with ``η = A exp(−((x − x_c)² + (y − y_c)²)/(2σ²))`` at the cell
        centres, for source centres ``u`` ``(B, 2)`` = ``(x_c, y_c)``; returns
        ``(B, 3, n, n)`` on ``u``'s device. Deterministic (``gen`` is unused)."""
        if u.ndim != 2 or u.shape[1] != 2:
            raise ConfigError(f"tsunami parameters must be (B, 2) = (x_c, y_c), got {u.shape}")
        ax = self.axes()
        y = ax["y"].to(device=u.device, dtype=dtype)
        x = ax["x"].to(device=u.device, dtype=dtype)
        xc = u[:, 0].to(dtype)[:, None, None]
        yc = u[:, 1].to(dtype)[:, None, None]
        r2 = (x[None, None, :] - xc) ** 2 + (y[None, :, None] - yc) ** 2
        eta = self.amplitude * torch.exp(-r2 / (2 * self.source_width**2))
        zero = torch.zeros_like(eta)
        return torch.stack([zero, zero.clone(), eta], dim=1)

    # ----------------------------------------------------------------------- diagnostics
    def mass(self, x: Tensor) -> Tensor:
        """Excess volume ``Σ η dx²`` (m³) of states ``(…, 3, n, n)``, shape ``(…)``."""
        return x[..., 2, :, :].sum((-2, -1)) * self.dx**2

    def energy(self, x: Tensor) -> Tensor:
        """Linear wave energy per unit density ``½ Σ (H_f (u² + v²) + g η²) dx²`` (m⁵/s²),
        ``H_f`` the mean still-water depth of the two cells beside a face; shape ``(…)``."""
        depth = self.depth_field().to(dtype=x.dtype, device=x.device)
        h_u = 0.5 * (depth + F.pad(depth[:, 1:], (0, 1)))
        h_v = 0.5 * (depth + F.pad(depth[1:, :], (0, 0, 0, 1)))
        e = h_u * x[..., 0, :, :] ** 2 + h_v * x[..., 1, :, :] ** 2
        e = e + self.gravity * x[..., 2, :, :] ** 2
        return 0.5 * e.sum((-2, -1)) * self.dx**2

    def config(self) -> dict[str, object]:
        """Plain-data description: ``name="tsunami"`` plus every constructor field (the
        bathymetry as a nested list or ``None``); ``Tsunami(**cfg minus "name")`` rebuilds it."""
        out: dict[str, object] = {"name": "tsunami"}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.tolist() if isinstance(value, Tensor) else value
        return out
