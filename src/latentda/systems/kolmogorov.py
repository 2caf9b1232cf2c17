"""Kolmogorov flow: forced 2-D incompressible Navier–Stokes on the periodic square [0, 2π)².

Equations (DESIGN section 3), in vorticity form with ``ω = ∂v/∂x − ∂u/∂y``:

.. math::
    ∂ω/∂t + \\mathbf{u}·∇ω = ν ∇²ω − α ω + f,\\qquad ν = 1/Re,

with linear drag ``α`` (0.1) and the Kolmogorov forcing ``F = (A sin(k_f y), 0)`` on the
x-momentum (``A = 1``, ``k_f = 4``), whose curl is ``f = ∂F_y/∂x − ∂F_x/∂y = −A k_f cos(k_f y)``.
So the flow is driven *along* ``+sin(k_f y)`` in ``u``: without perturbations the laminar solution
is ``u = A sin(k_f y)(1 − e^{−λt})/λ``, ``v = 0``, with ``λ = ν k_f² + α``.

Grid and storage. ``n`` points per side at ``y_j = 2πj/n``, ``x_i = 2πi/n``; a state is the
velocity ``(B, 2, n, n)`` with channels ``(u, v)``, index ``[j, i]`` = row ``y_j``, column ``x_i``.
The streamfunction is ``ψ`` with ``u = ∂ψ/∂y``, ``v = −∂ψ/∂x``, hence ``ω = −∇²ψ``; states
returned by :meth:`Kolmogorov.step` are divergence-free and have zero mean (a mean flow and any
irrotational part of an input are projected out, as is the Nyquist row/column of even grids,
which has no well-defined odd derivative).

Numerics. Pseudo-spectral on ``torch.fft.rfft2``: the advection ``u·∇ω`` is formed on the grid
and its spectrum truncated by the 2/3 rule (modes ``|k_x|, |k_y| ≤ K = ⌊(n−1)/3⌋`` kept, so the
quadratic product cannot alias into them). Time stepping is integrating-factor RK4: the linear
part ``L = −ν|k|² − α`` is integrated exactly per member, the advection and forcing by RK4.
Each member marches through a requested interval with its *own* sub-steps: at every sub-step
``h_cfl = min(max_dt, cfl·Δx/max|u|)`` from its current velocity, then the remaining time ``r``
is split into ``⌈r/h_cfl⌉`` equal parts and one is taken (equal sub-steps while the speed is
steady; the last one lands exactly on the interval's end). A batch therefore reproduces the
single-member runs to round-off; finished members are left out of further sub-steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import Tensor

from latentda.errors import ConfigError

#: Grid size ``n`` per named scale.
SIZES: dict[str, int] = {"ci": 32, "bench": 64, "paper": 150}

#: Side of the fixed grid the initial noise is drawn on; the initial field's Fourier modes come
#: from it, so the same seed gives the same continuous field at every resolution.
INIT_NOISE_GRID = 32

TWO_PI = 2.0 * math.pi


@dataclass(frozen=True, eq=False)
class Spectral:
    """Wavenumber tables of an ``n × n`` grid in the ``rfft2`` layout ``(n, n//2 + 1)``.

    Attributes
    ----------
    kx, ky
        Wavenumbers for first derivatives, ``(1, n//2+1)`` and ``(n, 1)``; 0 at the Nyquist
        mode of an even grid.
    k2
        ``|k|² = k_x² + k_y²`` ``(n, n//2+1)`` (with the Nyquist modes).
    inv_k2
        ``1/|k|²``, 0 at ``k = 0`` (zero-mean streamfunction).
    dealias
        2/3-rule mask ``(n, n//2+1)``: 1 where ``|k_x|, |k_y| ≤ ⌊(n−1)/3⌋``, else 0.
    keep
        0 on the Nyquist row/column of an even grid, else 1.
    """

    kx: Tensor
    ky: Tensor
    k2: Tensor
    inv_k2: Tensor
    dealias: Tensor
    keep: Tensor


def spectral_grid(
    n: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float64
) -> Spectral:
    """Wavenumber tables for an ``n × n`` grid on ``[0, 2π)²`` (integer wavenumbers)."""
    kind = {"device": device, "dtype": dtype}
    ky_full = torch.fft.fftfreq(n, d=1.0 / n, **kind)[:, None]
    kx_full = torch.fft.rfftfreq(n, d=1.0 / n, **kind)[None, :]
    k2 = kx_full**2 + ky_full**2
    inv_k2 = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, 1.0), 0.0)
    cut = (n - 1) // 3
    dealias = ((kx_full.abs() <= cut) & (ky_full.abs() <= cut)).to(dtype)
    nyq = float(n // 2) if n % 2 == 0 else math.inf
    keep = ((kx_full.abs() != nyq) & (ky_full.abs() != nyq)).to(dtype)
    kx = torch.where(kx_full.abs() == nyq, 0.0, kx_full)
    ky = torch.where(ky_full.abs() == nyq, 0.0, ky_full)
    return Spectral(kx=kx, ky=ky, k2=k2, inv_k2=inv_k2, dealias=dealias, keep=keep)


def velocity_to_vorticity_hat(x: Tensor, sp: Spectral) -> Tensor:
    """``ω̂ = i k_x v̂ − i k_y û`` for velocities ``(B, 2, n, n)`` → ``(B, n, n//2+1)`` complex,
    with the mean and the Nyquist modes set to 0."""
    uv = torch.fft.rfft2(x)
    return 1j * (sp.kx * uv[:, 1] - sp.ky * uv[:, 0]) * sp.keep


def vorticity_hat_to_velocity(w_hat: Tensor, sp: Spectral) -> Tensor:
    """``(u, v) = (∂ψ/∂y, −∂ψ/∂x)`` with ``ψ̂ = ω̂/|k|²``: ``(B, n, n//2+1)`` → ``(B, 2, n, n)``."""
    psi = w_hat * sp.inv_k2
    n = sp.k2.shape[0]
    return torch.fft.irfft2(torch.stack([1j * sp.ky * psi, -1j * sp.kx * psi], 1), s=(n, n))


def advection_hat(w_hat: Tensor, sp: Spectral) -> tuple[Tensor, Tensor]:
    """Dealiased spectrum of ``−u·∇ω`` and the per-member peak speed ``max √(u² + v²)``.

    Parameters
    ----------
    w_hat
        Vorticity spectra ``(B, n, n//2+1)``.

    Returns
    -------
    tuple[Tensor, Tensor]
        ``(B, n, n//2+1)`` complex and ``(B,)`` real.
    """
    psi = w_hat * sp.inv_k2
    n = sp.k2.shape[0]
    # u, v, ∂ω/∂x, ∂ω/∂y: four transforms of (B, n, n//2+1) each, faster here than one stacked
    # transform of four times the size (which leaves the cache); (i k)·ψ̂ rounds like i·(k ψ̂).
    ikx, iky = _imaginary_wavenumbers(sp, w_hat.dtype)
    u = torch.fft.irfft2(iky * psi, s=(n, n))
    v = torch.fft.irfft2((ikx * psi).neg_(), s=(n, n))
    wx = torch.fft.irfft2(ikx * w_hat, s=(n, n))
    wy = torch.fft.irfft2(iky * w_hat, s=(n, n))
    # max √(u² + v²) = √max(u² + v²) exactly (the square root is monotone, correctly rounded).
    speed = torch.sqrt((u * u + v * v).amax(dim=(-2, -1)))
    return -torch.fft.rfft2(u * wx + v * wy) * sp.dealias, speed


def _imaginary_wavenumbers(sp: Spectral, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``(i k_x, i k_y)`` as complex tensors of ``dtype``, cached on the tables."""
    cache = sp.__dict__.setdefault("_ik", {})
    if dtype not in cache:
        cache[dtype] = ((1j * sp.kx).to(dtype), (1j * sp.ky).to(dtype))
    return cache[dtype]


def ifrk4_step(
    w_hat: Tensor, h: Tensor, lin: Tensor, forcing_hat: Tensor, sp: Spectral, first: Tensor
) -> Tensor:
    """One integrating-factor RK4 step of ``ω̂' = L ω̂ + N(ω̂)`` (Trefethen 2000, ``kdv.m``).

    With ``E = e^{Lh}``, ``E₂ = e^{Lh/2}`` and ``a = hN(ω̂)``, ``b = hN(E₂(ω̂ + a/2))``,
    ``c = hN(E₂ω̂ + b/2)``, ``d = hN(Eω̂ + E₂c)``:
    ``ω̂ ← Eω̂ + (Ea + 2E₂(b + c) + d)/6``.

    Parameters
    ----------
    w_hat
        Vorticity spectra ``(B, n, n//2+1)``.
    h
        Per-member step ``(B, 1, 1)``.
    lin
        ``L = −ν|k|² − α`` per member, ``(B, n, n//2+1)`` real.
    forcing_hat
        Spectrum of the vorticity forcing ``(n, n//2+1)``.
    first
        ``N(ω̂)`` at the current state (already computed to choose ``h``), ``(B, n, n//2+1)``.
    """
    e2 = torch.exp(lin * (0.5 * h))
    e = e2 * e2

    def rhs(w: Tensor) -> Tensor:
        return (advection_hat(w, sp)[0] + forcing_hat) * h

    a = first * h
    b = rhs(e2 * (w_hat + 0.5 * a))
    c = rhs(e2 * w_hat + 0.5 * b)
    d = rhs(e * w_hat + e2 * c)
    return e * w_hat + (e * a + 2.0 * e2 * (b + c) + d) / 6.0


def band_limited_velocity(
    noise: Tensor, n: int, wavenumber: float, width: float, rms: float
) -> Tensor:
    """Velocities ``(B, 2, n, n)`` whose vorticity spectrum is the spectrum of ``noise`` times
    ``exp(−(|k| − k₀)²/(2σ²))``, kept for ``0 < |k| ≤ k₀ + 4σ`` and inside the 2/3 rule, scaled
    to RMS velocity ``√⟨u² + v²⟩ = rms``.

    Parameters
    ----------
    noise
        Real white noise ``(B, m, m)`` on a fixed grid with ``m/2 > k₀ + 4σ``; only its low modes
        are used, so the result is the same continuous field at every ``n ≥ 3(k₀ + 4σ) + 1``.
    """
    m = noise.shape[-1]
    cut = min(int(wavenumber + 4 * width), (n - 1) // 3)
    k_y = torch.arange(-cut, cut + 1)
    k_x = torch.arange(cut + 1)
    src = torch.fft.rfft2(noise)[:, k_y % m][:, :, k_x]
    kk = torch.sqrt(k_y[:, None] ** 2 + k_x[None, :] ** 2).to(noise.dtype)
    envelope = torch.exp(-((kk - wavenumber) ** 2) / (2 * width**2))
    envelope = envelope * (kk <= wavenumber + 4 * width) * (kk > 0)
    # Embed the kept modes into this grid's rfft2 layout (negative k_y wrap to the end).
    w_hat = torch.zeros(noise.shape[0], n, n // 2 + 1, dtype=src.dtype, device=noise.device)
    w_hat[:, (k_y % n)[:, None], k_x[None, :]] = src * envelope
    vel = vorticity_hat_to_velocity(w_hat, spectral_grid(n, noise.device, noise.dtype))
    norm = vel.pow(2).sum(1).mean((-2, -1)).sqrt()
    return vel * (rms / norm)[:, None, None, None]


@dataclass(frozen=True)
class Kolmogorov:
    """Kolmogorov flow with per-member Reynolds number ``u = (Re,)``, ``ν = 1/Re``.

    Parameters
    ----------
    n
        Grid points per side; the state is ``(2, n, n)``. Needs ``n ≥ 3 k_f + 1`` so the forcing
        survives the 2/3 rule.
    size
        Name of the scale this instance was built for (``ci``, ``bench``, ``paper`` or
        ``custom``); recorded in :meth:`config` only.
    re_min, re_max
        Prior ``Re ~ U(re_min, re_max)``.
    forcing_amplitude, forcing_wavenumber
        ``A`` and ``k_f`` of the x-momentum forcing ``A sin(k_f y)`` (vorticity forcing
        ``−A k_f cos(k_f y)``); ``A = 0`` switches it off.
    drag
        Linear drag rate ``α`` (``0`` switches it off).
    cfl, max_dt
        Sub-step ``h ≤ min(max_dt, cfl·Δx/max|u|)`` per member, ``Δx = 2π/n``.
    frame_dt, n_frames, spinup_time
        Frame spacing (also the default ``step`` interval :attr:`dt`), frames per trajectory and
        model time before frame 0.
    init
        ``"shared"``: one initial field from ``init_seed`` for every trajectory (the LD-EnSF
        protocol, the flow is a function of Re alone); ``"random"``: one per member from ``gen``.
    init_seed
        Seed of the shared initial field.
    init_wavenumber, init_width, init_velocity_rms
        Initial vorticity spectrum ``∝ exp(−(|k| − k₀)²/(2σ²))`` for ``|k| ≤ k₀ + 4σ`` with
        random phases, scaled to RMS velocity ``√⟨u² + v²⟩``.
    """

    n: int = 64
    size: str = "custom"
    re_min: float = 500.0
    re_max: float = 1500.0
    forcing_amplitude: float = 1.0
    forcing_wavenumber: int = 4
    drag: float = 0.1
    cfl: float = 0.5
    max_dt: float = 0.05
    frame_dt: float = 0.2
    n_frames: int = 40
    spinup_time: float = 4.0
    init: str = "shared"
    init_seed: int = 0
    init_wavenumber: float = 4.0
    init_width: float = 1.0
    init_velocity_rms: float = 1.0

    param_names: ClassVar[tuple[str, ...]] = ("reynolds",)
    channel_names: ClassVar[tuple[str, ...]] = ("u", "v")
    #: Both axes wrap (the domain is the torus [0, 2π)²).
    periodic_axes: ClassVar[tuple[bool, bool]] = (True, True)

    def __post_init__(self) -> None:
        positive = {
            "re_min": self.re_min,
            "cfl": self.cfl,
            "max_dt": self.max_dt,
            "frame_dt": self.frame_dt,
            "init_wavenumber": self.init_wavenumber,
            "init_width": self.init_width,
            "init_velocity_rms": self.init_velocity_rms,
        }
        for key, value in positive.items():
            if not value > 0:
                raise ConfigError(f"kolmogorov needs {key} > 0, got {value}")
        if not self.re_max >= self.re_min:
            raise ConfigError(f"kolmogorov needs re_max >= re_min, got {self.re_max}")
        if not self.drag >= 0:
            raise ConfigError(f"kolmogorov needs drag >= 0, got {self.drag}")
        if self.n_frames < 1 or not self.spinup_time >= 0:
            raise ConfigError("kolmogorov needs n_frames >= 1 and spinup_time >= 0")
        if self.init not in ("shared", "random"):
            raise ConfigError(f"kolmogorov init must be 'shared' or 'random', got {self.init!r}")
        if self.init_wavenumber + 4 * self.init_width >= INIT_NOISE_GRID // 2:
            raise ConfigError("kolmogorov needs init_wavenumber + 4*init_width < 16")
        if self.forcing_wavenumber < 1 or 3 * self.forcing_wavenumber >= self.n:
            raise ConfigError(
                f"kolmogorov needs 1 <= forcing_wavenumber < n/3, got {self.forcing_wavenumber} "
                f"with n = {self.n}"
            )

    @classmethod
    def from_size(cls, size: str, **overrides: Any) -> Kolmogorov:
        """The system at a named scale: ``ci`` (n = 32), ``bench`` (64), ``paper`` (150)."""
        if size not in SIZES:
            raise ConfigError(f"unknown kolmogorov size {size!r}; allowed: {', '.join(SIZES)}")
        allowed = [f.name for f in fields(cls) if f.name != "size"]
        bad = sorted(set(overrides) - set(allowed))
        if bad:
            raise ConfigError(f"unknown kolmogorov option(s) {bad}; allowed: {', '.join(allowed)}")
        return cls(**{"n": SIZES[size], **overrides, "size": size})

    # ----------------------------------------------------------------------- geometry
    @property
    def state_shape(self) -> tuple[int, ...]:
        return (2, self.n, self.n)

    @property
    def dt(self) -> float:
        """Default ``step`` interval: the frame spacing."""
        return self.frame_dt

    @property
    def domain_lengths(self) -> tuple[float, ...]:
        """Periodic lengths ``(2π, 2π)`` of the ``(y, x)`` axes."""
        return (TWO_PI, TWO_PI)

    def axes(self) -> dict[str, Tensor]:
        """Grid coordinates ``{"y": (n,), "x": (n,)}`` = ``2πj/n``, float64."""
        c = torch.arange(self.n, dtype=torch.float64) * (TWO_PI / self.n)
        return {"y": c, "x": c.clone()}

    def coords(self) -> Tensor:
        """Grid points ``(n·n, 2)`` as ``(y, x)``, row-major like a flattened ``(n, n)`` field."""
        yy, xx = torch.meshgrid(*self.axes().values(), indexing="ij")
        return torch.stack([yy.flatten(), xx.flatten()], -1)

    # ----------------------------------------------------------------------- dynamics
    def forcing_hat(self, sp: Spectral) -> Tensor:
        """Spectrum ``(n, n//2+1)`` of the vorticity forcing ``f = −A k_f cos(k_f y)``."""
        y = torch.arange(self.n, device=sp.k2.device, dtype=sp.k2.dtype) * (TWO_PI / self.n)
        k = self.forcing_wavenumber
        f = (-self.forcing_amplitude * k * torch.cos(k * y))[:, None].expand(self.n, self.n)
        return torch.fft.rfft2(f)

    def _viscosity(self, u: Tensor, x: Tensor) -> Tensor:
        """``ν = 1/Re`` per member ``(B,)`` in ``x``'s dtype; ``u`` is ``(B, 1)`` or ``(1, 1)``."""
        b = x.shape[0]
        if u.ndim != 2 or u.shape[1] != 1 or u.shape[0] not in (1, b):
            raise ConfigError(
                f"kolmogorov parameters must be ({b}, 1) = (Re,), got {tuple(u.shape)}"
            )
        if u.device != x.device:
            raise ConfigError(f"kolmogorov: parameters on {u.device} but states on {x.device}")
        re = u[:, 0].to(x.dtype).expand(b)
        if not bool((re > 0).all()):
            raise ConfigError("kolmogorov needs Reynolds numbers > 0")
        return 1.0 / re

    def step(self, x: Tensor, u: Tensor, dt: float | None = None, t: float = 0.0) -> Tensor:
        """Advance velocities ``x`` ``(B, 2, n, n)`` with Reynolds numbers ``u`` ``(B, 1)`` by
        ``dt`` (default :attr:`dt`), each member in its own CFL-limited sub-steps (module
        docstring). ``t`` is unused (autonomous forcing). Computes in ``x``'s dtype (float64 or
        float32) on ``x``'s device; returns a new divergence-free, zero-mean ``(B, 2, n, n)``."""
        return self.advance(x, u, dt, t)[0]

    def advance(
        self, x: Tensor, u: Tensor, dt: float | None = None, t: float = 0.0
    ) -> tuple[Tensor, Tensor]:
        """:meth:`step` that also reports how many sub-steps each member took.

        Parameters
        ----------
        x
            Velocities ``(B, 2, n, n)``.
        u
            Reynolds numbers ``(B, 1)`` (or ``(1, 1)`` for all members).
        dt
            Interval (default :attr:`dt`).
        t
            Unused (autonomous forcing).

        Returns
        -------
        tuple[Tensor, Tensor]
            The states after ``dt`` ``(B, 2, n, n)`` (as :meth:`step`) and the number of IF-RK4
            sub-steps of each member ``(B,)`` int64 (state-dependent: CFL-limited).
        """
        if x.ndim != 4 or tuple(x.shape[1:]) != self.state_shape:
            raise ConfigError(
                f"kolmogorov states must be (B, 2, {self.n}, {self.n}), got {tuple(x.shape)}"
            )
        interval = self.dt if dt is None else float(dt)
        if not interval >= 0:
            raise ConfigError(f"kolmogorov step needs dt >= 0, got {interval}")
        nu = self._viscosity(u, x)
        sp = spectral_grid(self.n, x.device, x.dtype)
        forcing = self.forcing_hat(sp)
        lin = -(nu[:, None, None] * sp.k2 + self.drag)
        w_hat = velocity_to_vorticity_hat(x, sp)
        remaining = torch.full_like(nu, interval)
        counts = torch.zeros(nu.shape, dtype=torch.int64, device=nu.device)
        while True:
            # Finished members drop out, so each member's sub-steps are its own.
            active = torch.nonzero(remaining > 0).squeeze(1)
            if active.numel() == 0:
                break
            if active.numel() == remaining.numel():  # all members: no gather/scatter
                w_hat, h = self._substep(w_hat, remaining, lin, forcing, sp)
                remaining = remaining - h
                counts += 1
                continue
            r = remaining[active]
            w_new, h = self._substep(w_hat[active], r, lin[active], forcing, sp)
            w_hat = w_hat.index_copy(0, active, w_new)
            remaining = remaining.index_copy(0, active, r - h)
            counts[active] += 1
        return vorticity_hat_to_velocity(w_hat, sp), counts

    def _substep(
        self, w_hat: Tensor, remaining: Tensor, lin: Tensor, forcing: Tensor, sp: Spectral
    ) -> tuple[Tensor, Tensor]:
        """One IF-RK4 sub-step per member of ``w_hat`` ``(b, n, n//2+1)``; returns the new spectra
        and the steps ``h`` ``(b,)``: ``r/⌈r/h_cfl⌉`` of the remaining times ``r``, so the last
        sub-step (``h = r``) ends exactly on the interval."""
        adv, speed = advection_hat(w_hat, sp)
        ok = torch.isfinite(speed) & (speed > 0)
        # A zero or non-finite field takes max_dt steps (a blown-up member still finishes).
        h_cfl = torch.where(ok, self.cfl * (TWO_PI / self.n) / torch.where(ok, speed, 1.0), 0.0)
        h_cfl = torch.where(ok, h_cfl.clamp(max=self.max_dt), self.max_dt)
        h = remaining / torch.ceil(remaining / h_cfl)
        return ifrk4_step(w_hat, h[:, None, None], lin, forcing, sp, adv + forcing), h

    def vorticity(self, x: Tensor) -> Tensor:
        """Vorticity ``ω = ∂v/∂x − ∂u/∂y`` (spectral) of velocities ``(B, 2, n, n)`` →
        ``(B, n, n)``."""
        sp = spectral_grid(self.n, x.device, x.dtype)
        return torch.fft.irfft2(velocity_to_vorticity_hat(x, sp), s=(self.n, self.n))

    # ----------------------------------------------------------------------- prior, states
    def param_bounds(self) -> Tensor:
        """Prior support ``[[re_min, re_max]]``, ``(1, 2)`` float64."""
        return torch.tensor([[self.re_min, self.re_max]], dtype=torch.float64)

    def sample_params(self, n: int, gen: torch.Generator) -> Tensor:
        """Reynolds numbers ``(n, 1)`` ~ ``U(re_min, re_max)``, float64 on ``gen``'s device."""
        r = torch.rand(n, 1, generator=gen, dtype=torch.float64, device=gen.device)
        return self.re_min + (self.re_max - self.re_min) * r

    def initial_state(
        self, u: Tensor, gen: torch.Generator | None = None, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """Band-limited random velocities ``(B, 2, n, n)`` on ``u``'s device (``B = len(u)``).

        The vorticity spectrum is ``exp(−(|k| − k₀)²/(2σ²))`` times the spectrum of white noise
        drawn on a fixed 32 × 32 grid, kept for ``|k| ≤ k₀ + 4σ`` (and inside the 2/3 rule), then
        scaled to the RMS velocity ``init_velocity_rms``; the same draw gives the same
        continuous field at every ``n ≥ 25``. ``init="shared"``: one field from ``init_seed``
        for all members (``gen`` is not used); ``"random"``: one per member from ``gen``.
        """
        b = u.shape[0]
        shape = (INIT_NOISE_GRID, INIT_NOISE_GRID)
        if self.init == "shared":
            seeded = torch.Generator().manual_seed(self.init_seed)
            noise = torch.randn(1, *shape, dtype=torch.float64, generator=seeded)
        else:
            if gen is None:
                raise ConfigError("kolmogorov init='random' needs a torch.Generator")
            noise = torch.randn(b, *shape, dtype=torch.float64, generator=gen, device=gen.device)
        vel = band_limited_velocity(
            noise.cpu(), self.n, self.init_wavenumber, self.init_width, self.init_velocity_rms
        )
        # One shared field copied to every member: identical bits whatever the batch size.
        vel = vel.expand(b, -1, -1, -1) if self.init == "shared" else vel
        return vel.to(device=u.device, dtype=dtype).clone()

    def config(self) -> dict[str, object]:
        """Plain-data description: ``name="kolmogorov"`` plus every constructor field;
        ``Kolmogorov(**cfg minus "name")`` rebuilds it."""
        out: dict[str, object] = {"name": "kolmogorov"}
        for f in fields(self):
            out[f.name] = getattr(self, f.name)
        return out
