"""Forced shallow water on the rotating sphere, spectral in vorticity–divergence form.

Equations (height ``h``, velocity ``V = (u_φ, u_θ)``, relative vorticity ``ζ``, divergence
``δ``, absolute vorticity ``η = ζ + f`` with ``f = 2Ω sin θ``, kinetic energy ``K = |V|²/2``)::

    ∂ζ/∂t = −∇·(η V)                              + D(ζ)
    ∂δ/∂t =  k·∇×(η V) − ∇²(g h + K)               + D(δ)
    ∂h/∂t = −∇·(h V) + h_f(λ, θ, t)                + D(h)

with hyperdiffusion ``D = −(−∇²)^p / (τ (T(T+1)/a²)^p)`` (``p = 4``, i.e. ∇⁸, so the
e-folding time at the truncation degree ``T`` is ``τ``; applied as an exact factor after every
sub-step) and the moving height forcing (``λ`` longitude, ``θ`` latitude, both radians)::

    h_f = h_f0 · cos(λ − λ_c(t)) · exp(−(θ − θ_c(t))² / σ²),
    λ_c(t) = 2π t / 86400 s  (one eastward turn per day),   θ_c(t) = 0.4 sin(2π t / 1008 h).

``h_f0`` is given in m/h (converted to m/s), ``σ`` in **radians** (DESIGN taken literally: with
σ ∈ [1, 4] the forcing is a broad, mostly wavenumber-1 pattern). The negative half of the cosine
is kept: the longitude mean of ``cos(λ − λ_c)`` is zero, so the forcing is exactly mass-neutral
and the mean depth cannot drift (its round-off ``l = 0`` part is removed).

Grids. States live on an **equiangular** grid ``(nlat, nlon)`` with both poles: latitude runs
north to south, ``θ_i = π/2 − iπ/(nlat − 1)``, longitude ``λ_j = 2πj/nlon`` from 0. The spectral
truncation is triangular ``T = nlat/2 − 1`` (``lmax = mmax = nlat/2`` coefficients), the largest
for which Clenshaw–Curtis quadrature makes grid → spectral → grid exact, so repeated ``step``
calls lose nothing. Tendencies are evaluated on an internal Gauss–Legendre grid fine enough to
make the quadratic terms alias-free (``nlat_g >= (3T + 1)/2``, ``nlon_g = 2 nlat_g``).

Time stepping: Adams–Bashforth 3 started by one Heun and one AB2 sub-step inside each ``step``
call; the sub-step is the largest that divides the interval and satisfies a gravity-wave Courant
condition at the truncation (``courant · a / ((√(gH) + 100 m/s) · T)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any, ClassVar

import torch
import torch_harmonics as th
from torch import Tensor
from torch_harmonics.quadrature import clenshaw_curtiss_weights

from latentda.errors import ConfigError

DAY = 86400.0
HOUR = 3600.0
#: Named grid sizes ``(nlat, nlon)``.
SIZES: dict[str, tuple[int, int]] = {"ci": (32, 64), "bench": (64, 128), "paper": (256, 512)}
#: Prior bounds of the parameters: ``h_f0`` in m/h, ``sigma`` in radians.
PARAM_BOUNDS: dict[str, tuple[float, float]] = {"h_f0": (0.1, 30.0), "sigma": (1.0, 4.0)}
# Advective allowance added to the gravity-wave speed in the Courant condition (m/s): the
# forced flows stay well below it, so the sub-step does not depend on the state.
_WIND_ALLOWANCE = 100.0
# Fields of Sphere that must be strictly positive.
_POSITIVE = ("radius", "gravity", "mean_depth", "hyperdiffusion_time", "courant", "frame_dt")
_POSITIVE += ("forcing_lon_period", "forcing_lat_period")
#: Spectral height source at an absolute time: ``t -> (B, lmax, mmax)`` complex, m/s.
Source = Callable[[float], Tensor]


# --------------------------------------------------------------------------- grids and fields


def equiangular_grid(nlat: int, nlon: int) -> tuple[Tensor, Tensor]:
    """Latitudes ``(nlat,)`` from ``+π/2`` to ``−π/2`` and longitudes ``(nlon,)`` from 0,
    both in radians and float64 (the node order of torch-harmonics' ``"equiangular"`` grid)."""
    lat = math.pi / 2 - torch.arange(nlat, dtype=torch.float64) * (math.pi / (nlat - 1))
    lon = torch.arange(nlon, dtype=torch.float64) * (2 * math.pi / nlon)
    return lat, lon


def area_weights(nlat: int, nlon: int, radius: float = 1.0) -> Tensor:
    """Quadrature weights ``(nlat, 1)`` with ``Σ_ij w_i f_ij = ∫ f dA`` on the equiangular grid.

    ``w_i = a² · (2π/nlon) · c_i`` with ``c_i`` the Clenshaw–Curtis weights in ``cos(colat)``
    (``Σ c_i = 2``); exact for every field of degree ``< nlat`` (all states of :class:`Sphere`).
    """
    _, c = clenshaw_curtiss_weights(nlat, -1.0, 1.0)
    return (radius**2 * (2 * math.pi / nlon) * torch.flip(c, dims=(0,)))[:, None]


def height_forcing(
    lat: Tensor,
    lon: Tensor,
    t: float,
    h_f0: Tensor,
    sigma: Tensor,
    lat_amplitude: float = 0.4,
    lat_period: float = 1008 * HOUR,
    lon_period: float = DAY,
) -> Tensor:
    """Moving height source ``h_f`` in m/s, ``(B, nlat, nlon)``.

    ``h_f = (h_f0 / 3600) cos(λ − 2πt/lon_period) exp(−(θ − θ_c)² / σ²)`` with
    ``θ_c = lat_amplitude · sin(2πt/lat_period)``.

    Parameters
    ----------
    lat, lon
        Latitudes ``(nlat,)`` and longitudes ``(nlon,)`` in radians.
    t
        Absolute model time in seconds.
    h_f0
        Amplitudes ``(B,)`` in m/h.
    sigma
        Latitudinal widths ``(B,)`` in radians.
    """
    lon_c = 2 * math.pi * t / lon_period
    lat_c = lat_amplitude * math.sin(2 * math.pi * t / lat_period)
    zonal = torch.cos(lon - lon_c)  # (nlon,)
    merid = torch.exp(-((lat[None, :] - lat_c) ** 2) / sigma[:, None] ** 2)  # (B, nlat)
    return (h_f0 / HOUR)[:, None, None] * merid[:, :, None] * zonal[None, None, :]


def williamson2(
    lat: Tensor,
    lon: Tensor,
    u0: float,
    h0: float,
    radius: float = 6.37122e6,
    omega: float = 7.292e-5,
    gravity: float = 9.80616,
) -> Tensor:
    """Williamson et al. (1992) test case 2 (α = 0): steady zonal geostrophic flow, ``(3, H, W)``.

    ``u_φ = u0 cos θ``, ``u_θ = 0``, ``h = h0 − (aΩu0 + u0²/2) sin²θ / g``; channels
    ``(h, u_φ, u_θ)`` in m, m/s, m/s on the grid ``lat`` ``(H,)`` × ``lon`` ``(W,)`` (radians).
    (The tilted variant α ≠ 0 is steady only with a tilted Coriolis parameter, which this model
    does not have.)
    """
    th_ = lat[:, None].expand(lat.shape[0], lon.shape[0])
    u = u0 * torch.cos(th_)
    h = h0 - (radius * omega * u0 + 0.5 * u0**2) / gravity * torch.sin(th_) ** 2
    return torch.stack([h, u, torch.zeros_like(u)])


# --------------------------------------------------------------------------- spectral operators


def truncation(nlat: int) -> int:
    """Number of spectral degrees ``lmax = mmax = nlat // 2`` (triangular ``T = lmax − 1``)."""
    return nlat // 2


def gauss_grid_size(lmax: int) -> tuple[int, int]:
    """Alias-free Gauss–Legendre grid ``(nlat_g, nlon_g)`` for quadratic terms at ``T = lmax−1``:
    ``nlat_g`` the smallest even number ``>= (3T + 1)/2``, ``nlon_g = 2 nlat_g >= 3T + 1``."""
    t = lmax - 1
    n = math.ceil((3 * t + 1) / 2)
    n += n % 2
    return n, 2 * n


def _columns(parts: list[tuple[Tensor, bool]]) -> Tensor:
    """Stack complex ``(*lead, Q_i, M)`` blocks along ``Q`` into the real ``bmm`` operand
    ``(M, ΣQ_i, 2N)`` (``N = prod(lead)``; columns: lead index, then real/imaginary part), in
    one pass. A block flagged ``True`` enters multiplied by ``i``: ``(re, im) -> (−im, re)``.
    """
    ref = parts[0][0]
    lead, m = ref.shape[:-2], ref.shape[-1]
    n = math.prod(lead)
    q_total = sum(x.shape[-2] for x, _ in parts)
    dtype = torch.float64 if ref.dtype == torch.complex128 else torch.float32
    cols = torch.empty(m, q_total, n, 2, dtype=dtype, device=ref.device)
    nd = len(lead)
    order = (nd + 1, nd, *range(nd), nd + 2)  # (*lead, Q, M, 2) -> (M, Q, *lead, 2)
    row = 0
    for x, rotate in parts:
        q = x.shape[-2]
        xr = torch.view_as_real(x).permute(order)
        dst = cols[:, row : row + q].view(m, q, *lead, 2)
        if rotate:
            torch.neg(xr[..., 1], out=dst[..., 0])
            dst[..., 1].copy_(xr[..., 0])
        else:
            dst.copy_(xr)
        row += q
    return cols.view(m, q_total, 2 * n)


def _uncolumns(y: Tensor, out: Tensor, rotate: bool = False) -> None:
    """Write ``bmm`` rows ``y`` ``(M, P, 2N)`` into complex ``out`` ``(*lead, P, M)``
    (``N = prod(lead)``, any strides), times ``i`` if ``rotate``: the inverse of
    :func:`_columns` for one block."""
    lead = out.shape[:-2]
    m, p = y.shape[:2]
    nd = len(lead)
    order = (*range(2, nd + 2), 1, 0, nd + 2)  # (M, P, *lead, 2) -> (*lead, P, M, 2)
    yr = y.view(m, p, *lead, 2).permute(order)
    o = torch.view_as_real(out)
    if rotate:
        torch.neg(yr[..., 1], out=o[..., 0])
        o[..., 1].copy_(yr[..., 0])
    else:
        o.copy_(yr)


class GaussTransforms:
    """Scalar and vector spherical-harmonic transforms on a Gauss–Legendre grid, each one FFT
    along longitude plus one batched matmul over the orders ``m``.

    Same tables and conventions as torch-harmonics' ``RealSHT``, ``InverseRealSHT``,
    ``RealVectorSHT`` and ``InverseRealVectorSHT`` (``grid="legendre-gauss"``, orthonormal,
    no Condon–Shortley phase, ``lmax = mmax``), whose results they reproduce to round-off;
    torch-harmonics contracts every real/imaginary and component pair in a separate einsum
    (8 per vector transform), which dominates a sub-step at small batches.

    The vector transforms use that, with ``A = s``, ``B = i t`` (spheroidal/toroidal, or the
    two grid components), both directions take the form ``(W₀A + W₁B, i(W₁A + W₀B))``, a
    single real ``(2P, 2Q)`` block matrix ``[[W₀, W₁], [W₁, W₀]]`` per order.

    Shapes: scalar grid ``(..., nlat, nlon)`` ↔ spectral ``(..., lmax, mmax)`` complex;
    vector grid ``(..., 2, nlat, nlon)`` ↔ spectral ``(..., 2, lmax, mmax)``; the Fourier
    coefficients in between are ``(..., nlat, mmax)`` complex.
    """

    def __init__(
        self, nlat: int, nlon: int, lmax: int, device: torch.device, dtype: torch.dtype
    ) -> None:
        kw: dict[str, Any] = {"lmax": lmax, "mmax": lmax, "grid": "legendre-gauss"}
        kw["csphase"] = False
        opts = {"device": device, "dtype": dtype}
        fwd = th.RealSHT(nlat, nlon, **kw).weights.to(torch.float64)  # (M, L, K)
        inv = th.InverseRealSHT(nlat, nlon, **kw).pct.to(torch.float64)  # (M, L, K)
        vfw = th.RealVectorSHT(nlat, nlon, **kw).weights.to(torch.float64)  # (2, M, L, K)
        vin = th.InverseRealVectorSHT(nlat, nlon, **kw).dpct.to(torch.float64)  # (2, M, L, K)
        # torch-harmonics scales the forward FFT (norm="forward") by 2π: folded in here.
        self.fwd = (2 * math.pi * fwd).to(**opts).contiguous()
        self.inv = inv.transpose(1, 2).to(**opts).contiguous()  # (M, K, L)
        w0, w1 = 2 * math.pi * vfw[0], 2 * math.pi * vfw[1]
        self.vfwd = torch.cat([torch.cat([w0, w1], 2), torch.cat([w1, w0], 2)], 1)
        self.vfwd = self.vfwd.to(**opts).contiguous()  # (M, 2L, 2K)
        d0, d1 = vin[0].transpose(1, 2), vin[1].transpose(1, 2)
        self.vinv = torch.cat([torch.cat([d0, d1], 2), torch.cat([d1, d0], 2)], 1)
        self.vinv = self.vinv.to(**opts).contiguous()  # (M, 2K, 2L)
        self.nlat, self.nlon, self.lmax = nlat, nlon, lmax

    # Fourier stage ------------------------------------------------------------------------
    def to_fourier(self, x: Tensor) -> Tensor:
        """Grid ``(..., nlat, nlon)`` -> the first ``mmax`` longitude Fourier coefficients."""
        return torch.fft.rfft(x, dim=-1, norm="forward")[..., : self.lmax]

    def from_fourier(self, f: Tensor) -> Tensor:
        """Fourier coefficients ``(..., nlat, mmax)`` complex -> real ``(..., nlat, nlon)``
        (overwrites the imaginary part of ``m = 0``: a real field's is zero)."""
        f[..., 0].imag = 0.0
        return torch.fft.irfft(f, n=self.nlon, dim=-1, norm="forward")

    # Legendre stage -----------------------------------------------------------------------
    def scalar_legendre(self, w: Tensor, x: Tensor, out: Tensor | None = None) -> Tensor:
        """``w[m] @ x[..., :, m]`` for every order: ``x`` ``(..., Q, M)`` complex ->
        ``(..., P, M)`` with ``w`` ``(M, P, Q)`` (:attr:`fwd` or :attr:`inv`)."""
        y = torch.bmm(w, _columns([(x, False)]))
        if out is None:
            shape = (*x.shape[:-2], w.shape[1], x.shape[-1])
            out = torch.empty(shape, dtype=x.dtype, device=x.device)
        _uncolumns(y, out)
        return out

    def vector_legendre(self, w: Tensor, x: Tensor, out: Tensor | None = None) -> Tensor:
        """``(W₀A + W₁B, i(W₁A + W₀B))`` with ``A, B = x₀, i x₁``: ``x`` ``(..., 2, Q, M)``
        -> ``(..., 2, P, M)`` with ``w`` ``(M, 2P, 2Q)`` (:attr:`vfwd` or :attr:`vinv`)."""
        y = torch.bmm(w, _columns([(x[..., 0, :, :], False), (x[..., 1, :, :], True)]))
        p = w.shape[1] // 2
        if out is None:
            shape = (*x.shape[:-3], 2, p, x.shape[-1])
            out = torch.empty(shape, dtype=x.dtype, device=x.device)
        _uncolumns(y[:, :p], out[..., 0, :, :])
        _uncolumns(y[:, p:], out[..., 1, :, :], rotate=True)
        return out

    # Transforms ----------------------------------------------------------------------------
    def sht(self, x: Tensor) -> Tensor:
        """Grid ``(..., nlat, nlon)`` real -> coefficients ``(..., lmax, mmax)`` complex."""
        return self.scalar_legendre(self.fwd, self.to_fourier(x))

    def sht_wavenumber_one(self, profile: Tensor, phase: float) -> Tensor:
        """:meth:`sht` of ``profile(θ) · cos(λ − phase)`` without the grid: ``(..., nlat)`` real
        latitude profiles -> ``(..., lmax, mmax)`` complex, nonzero in the order ``m = 1``
        only (its Fourier coefficient is ``½ e^{−i·phase}`` times the profile)."""
        col = profile.to(self.fwd.dtype) @ self.fwd[1].T  # (..., lmax)
        out = torch.zeros(
            (*profile.shape[:-1], self.lmax, self.lmax),
            dtype=torch.complex128 if col.dtype == torch.float64 else torch.complex64,
            device=col.device,
        )
        out[..., 1] = col * (0.5 * complex(math.cos(phase), -math.sin(phase)))
        return out

    def isht(self, s: Tensor) -> Tensor:
        """Coefficients ``(..., lmax, mmax)`` complex -> grid ``(..., nlat, nlon)`` real."""
        return self.from_fourier(self.scalar_legendre(self.inv, s))

    def vsht(self, x: Tensor) -> Tensor:
        """Vector grid ``(..., 2, nlat, nlon)`` ``(u_φ, u_θ)`` -> spheroidal/toroidal
        coefficients ``(..., 2, lmax, mmax)``."""
        return self.vector_legendre(self.vfwd, self.to_fourier(x))

    def ivsht(self, s: Tensor) -> Tensor:
        """Spheroidal/toroidal coefficients ``(..., 2, lmax, mmax)`` -> vector grid
        ``(..., 2, nlat, nlon)``."""
        return self.from_fourier(self.vector_legendre(self.vinv, s))


class SphereOperators:
    """Transforms and spectral constants for one grid, device and dtype (built once, cached).

    Spectral arrays are complex ``(..., lmax, mmax)`` with degree ``l`` on the first axis
    (orthonormal harmonics without Condon–Shortley phase, torch-harmonics layout). Scalar
    transforms ``sht``/``isht`` act on ``(..., nlat, nlon)``; vector transforms on
    ``(..., 2, nlat, nlon)`` with components ``(u_φ, u_θ)``; the ``*_g`` variants on the
    internal Gauss grid ``(lat_g, lon_g)``. ``lap``/``invlap`` are ``∇²`` and its inverse on
    ``l >= 1`` (zero at ``l = 0``).
    """

    def __init__(
        self,
        nlat: int,
        nlon: int,
        radius: float,
        omega: float,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        lmax = truncation(nlat)
        ng, nlg = gauss_grid_size(lmax)
        kw: dict[str, Any] = {"lmax": lmax, "mmax": lmax, "csphase": False}
        # csphase=False with vector components (u_φ, u_θ northward) gives the usual signs:
        # vsht -> (ζ, δ) / (a ∇²) (checked against solid-body rotation and a gradient field).
        out = {"grid": "equiangular", **kw}

        def mod(m: torch.nn.Module) -> torch.nn.Module:
            return m.to(device=device, dtype=dtype)

        self.sht = mod(th.RealSHT(nlat, nlon, **out))
        self.isht = mod(th.InverseRealSHT(nlat, nlon, **out))
        self.vsht = mod(th.RealVectorSHT(nlat, nlon, **out))
        self.ivsht = mod(th.InverseRealVectorSHT(nlat, nlon, **out))
        # The Gauss-grid transforms run every sub-step: the same Legendre tables as
        # torch-harmonics', applied as one batched matmul per call (GaussTransforms).
        gauss = GaussTransforms(ng, nlg, lmax, device, dtype)
        self.sht_g = gauss.sht
        self.isht_g = gauss.isht
        self.vsht_g = gauss.vsht
        self.ivsht_g = gauss.ivsht
        self.gauss = gauss
        self.lmax = lmax
        self.radius = radius
        opts = {"device": device, "dtype": dtype}
        ll = torch.arange(lmax, **opts)[:, None].expand(lmax, lmax)
        self.ll1 = ll * (ll + 1)  # l(l+1), (lmax, mmax)
        self.lap = -self.ll1 / radius**2
        self.invlap = torch.where(self.ll1 > 0, -(radius**2) / self.ll1.clamp_min(1), 0.0)
        cost, _ = th.quadrature.legendre_gauss_weights(ng, -1.0, 1.0)
        self.lat_g = (-torch.arcsin(cost)).to(**opts)  # north to south
        self.lon_g = (torch.arange(nlg, dtype=torch.float64) * (2 * math.pi / nlg)).to(**opts)
        self.coriolis_g = (2 * omega * torch.sin(self.lat_g))[:, None]

    # State <-> spectral coefficients (h, ζ, δ) on the equiangular output grid.
    def to_spectral(self, x: Tensor) -> Tensor:
        """Grid ``(B, 3, nlat, nlon)`` ``(h, u_φ, u_θ)`` -> spectral ``(B, 3, L, L)`` (h, ζ, δ)."""
        hs = self.sht(x[:, :1])
        vd = self.lap * self.radius * self.vsht(x[:, 1:])
        return torch.cat([hs, vd], dim=1)

    def to_grid(self, s: Tensor) -> Tensor:
        """Spectral ``(B, 3, L, L)`` (h, ζ, δ) -> grid ``(B, 3, nlat, nlon)`` (h, u_φ, u_θ)."""
        h = self.isht(s[:, :1])
        uv = self.ivsht(self.invlap * s[:, 1:] / self.radius)
        return torch.cat([h, uv], dim=1)


@lru_cache(maxsize=8)
def _operators(
    nlat: int, nlon: int, radius: float, omega: float, device: torch.device, dtype: torch.dtype
) -> SphereOperators:
    # Legendre tables are the costly part (O(L² nlat) memory): build them once per grid.
    return SphereOperators(nlat, nlon, radius, omega, device, dtype)


def swe_tendency(s: Tensor, ops: SphereOperators, gravity: float, forcing: Tensor | None) -> Tensor:
    """Spectral tendency ``∂(h, ζ, δ)/∂t`` without hyperdiffusion, ``(B, 3, L, L)``.

    Products are formed on the alias-free Gauss grid. ``forcing`` is the spectral height source
    ``(B, L, L)`` in m/s or ``None``.
    """
    a = ops.radius
    g = ops.gauss
    b, lm = s.shape[0], ops.lmax
    ng, nlg = g.nlat, g.nlon
    # The same transforms as isht_g / ivsht_g / vsht_g / sht_g, with one inverse and one
    # forward FFT for all fields (fewer, larger calls).
    four = torch.empty(b, 4, ng, lm, dtype=s.dtype, device=s.device)
    g.scalar_legendre(g.inv, s[:, :2], out=four[:, :2])
    g.vector_legendre(g.vinv, ops.invlap * s[:, 1:] / a, out=four[:, 2:])
    grid = g.from_fourier(four)  # (B, 4, ng, nlg): h, ζ, u_φ, u_θ
    hz, uv = grid[:, :2], grid[:, 2:]
    prod = torch.empty(b, 5, ng, nlg, dtype=grid.dtype, device=grid.device)
    torch.mul(uv, hz[:, 1:2] + ops.coriolis_g, out=prod[:, 0:2])  # ηV
    torch.mul(uv, hz[:, :1], out=prod[:, 2:4])  # hV
    prod[:, 4] = gravity * hz[:, 0] + 0.5 * (uv**2).sum(dim=1)  # g h + K
    spec = g.to_fourier(prod)
    fluxes = spec[:, :4].reshape(b, 2, 2, ng, lm)
    cd = ops.lap * a * g.vector_legendre(g.vfwd, fluxes)  # (B, 2, 2, L, L): [ηV, hV] x [curl, div]
    energy = g.scalar_legendre(g.fwd, spec[:, 4])
    dh = -cd[:, 1, 1]
    if forcing is not None:
        dh = dh + forcing
    dz = -cd[:, 0, 1]
    dd = cd[:, 0, 0] - ops.lap * energy
    return torch.stack([dh, dz, dd], dim=1)


def hyperdiffusion_factor(ops: SphereOperators, dt: float, efold: float, order: int) -> Tensor:
    """Exact decay ``exp(−dt/τ · (l(l+1)/(T(T+1)))^p)`` over one step, ``(L, L)`` real."""
    top = ops.ll1[-1, 0]
    return torch.exp(-(dt / efold) * (ops.ll1 / top) ** order)


# --------------------------------------------------------------------------- the system


@dataclass(frozen=True)
class Sphere:
    """Forced rotating shallow water on an equiangular lat–lon grid (see the module docstring).

    State ``(B, 3, nlat, nlon)``, channels ``(h, u_φ, u_θ)``: total fluid depth (m), eastward
    and northward wind (m/s). Parameters ``u`` ``(B, 2)``: ``h_f0`` (m/h) and ``sigma`` (rad).
    Time in seconds. float64 by default; runs on the device of its inputs.

    Parameters
    ----------
    nlat, nlon
        Grid size; ``nlat`` even, ``nlon >= nlat``. Spectral truncation ``T = nlat/2 − 1``.
    size
        Label reported by :meth:`config` (set by :meth:`from_size`).
    radius, omega, gravity, mean_depth
        Earth radius (m), rotation rate (1/s), gravity (m/s²), global mean depth ``H`` (m).
    zonal_wind
        Equatorial speed ``u0`` (m/s) of the balanced solid-body background flow.
    perturbation_wind
        RMS wind (m/s) of the seeded balanced perturbation (degrees 2..8).
    init
        ``"shared"``: one seeded perturbation for all members (the flow is then a function of
        the parameters); ``"random"``: one per member.
    hyperdiffusion_time, hyperdiffusion_order
        E-folding time ``τ`` (s) at the truncation degree and power ``p`` of ``−∇²``.
    courant
        Courant number of the sub-step (gravity waves plus 100 m/s at degree ``T``).
    forcing
        ``False`` switches the moving height source off entirely (``u`` is then ignored).
    frame_dt, n_frames, spinup_time
        Frame spacing (8 h), number of frames (63) and burn-in (3 days: three forcing turns,
        so frame 0 already carries the forced response).
    """

    nlat: int = 64
    nlon: int = 128
    size: str = "custom"
    radius: float = 6.37122e6
    omega: float = 7.292e-5
    gravity: float = 9.80616
    mean_depth: float = 1.0e4
    zonal_wind: float = 20.0
    perturbation_wind: float = 2.0
    init: str = "shared"
    hyperdiffusion_time: float = 2 * HOUR
    hyperdiffusion_order: int = 4
    courant: float = 0.5
    forcing: bool = True
    forcing_lon_period: float = DAY
    forcing_lat_amplitude: float = 0.4
    forcing_lat_period: float = 1008 * HOUR
    frame_dt: float = 8 * HOUR
    n_frames: int = 63
    spinup_time: float = 3 * DAY

    param_names: tuple[str, ...] = field(default=("h_f0", "sigma"), init=False)
    channel_names: tuple[str, ...] = field(default=("h", "u_phi", "u_theta"), init=False)
    #: Latitude does not wrap, longitude does.
    periodic_axes: ClassVar[tuple[bool, bool]] = (False, True)

    @staticmethod
    def forcing_periods(config: Mapping[str, Any]) -> tuple[float, ...]:
        """Periods (s) of the source's known clock for a :meth:`config`: its longitude turn and
        latitude swing, whatever the parameters; none when ``forcing`` is off."""
        if not config.get("forcing", True):
            return ()
        return (float(config["forcing_lon_period"]), float(config["forcing_lat_period"]))

    def __post_init__(self) -> None:
        if self.nlat < 8 or self.nlat % 2:
            raise ConfigError(f"sphere needs an even nlat >= 8, got {self.nlat}")
        if self.nlon < self.nlat:
            raise ConfigError(f"sphere needs nlon >= nlat, got {self.nlon} < {self.nlat}")
        if self.init not in ("shared", "random"):
            raise ConfigError(f"sphere init must be 'shared' or 'random', got {self.init!r}")
        bad = [n for n in _POSITIVE if not getattr(self, n) > 0]
        if bad:
            raise ConfigError(f"sphere needs {bad[0]} > 0, got {getattr(self, bad[0])}")
        if self.n_frames < 1 or self.spinup_time < 0 or self.hyperdiffusion_order < 1:
            raise ConfigError("sphere needs n_frames >= 1, spinup_time >= 0, order >= 1")

    @classmethod
    def from_size(cls, size: str, **overrides: Any) -> Sphere:
        """``ci`` (32×64), ``bench`` (64×128) or ``paper`` (256×512), fields overridable."""
        if size not in SIZES:
            raise ConfigError(f"unknown sphere size {size!r}; allowed: {', '.join(SIZES)}")
        nlat, nlon = SIZES[size]
        return cls(**{"nlat": nlat, "nlon": nlon, "size": size, **overrides})

    # ----------------------------------------------------------------- protocol attributes

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (3, self.nlat, self.nlon)

    @property
    def dt(self) -> float:
        """Default step: the frame spacing (``step`` sub-steps internally)."""
        return self.frame_dt

    @property
    def lmax(self) -> int:
        """Spectral coefficients per axis (degrees ``0..lmax−1``)."""
        return truncation(self.nlat)

    @property
    def max_substep(self) -> float:
        """Largest internal sub-step (s): ``courant · a / ((√(gH) + 100 m/s) · T)``."""
        speed = math.sqrt(self.gravity * self.mean_depth) + _WIND_ALLOWANCE
        return self.courant * self.radius / (speed * (self.lmax - 1))

    def substeps(self, dt: float) -> tuple[int, float]:
        """Number and length of the equal sub-steps covering an interval ``dt``."""
        n = max(1, math.ceil(dt / self.max_substep - 1e-9))
        return n, dt / n

    def operators(
        self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64
    ) -> SphereOperators:
        """The cached transforms (``to_spectral``/``to_grid``) for a device and dtype."""
        return _operators(
            self.nlat, self.nlon, self.radius, self.omega, torch.device(device), dtype
        )

    # ----------------------------------------------------------------- dynamics

    def step(self, x: Tensor, u: Tensor | None, dt: float, t: float = 0.0) -> Tensor:
        """Advance states ``x`` ``(B, 3, nlat, nlon)`` from time ``t`` by ``dt`` seconds.

        ``u`` ``(B, 2)`` holds ``(h_f0 [m/h], sigma [rad])`` per member (ignored when
        ``forcing`` is off). The state is projected on the truncation (exact for every state
        this class produces), integrated in spectral space and returned on the grid.
        """
        if x.ndim != 4 or tuple(x.shape[1:]) != self.state_shape:
            raise ConfigError(
                f"sphere state must be (B, {3}, {self.nlat}, {self.nlon}), got {tuple(x.shape)}"
            )
        if dt < 0:
            raise ConfigError(f"sphere step needs dt >= 0, got {dt}")
        if dt == 0:
            return x.clone()
        ops = self.operators(x.device, x.dtype)
        source = self._source(ops, x, u) if self.forcing else None
        n, h = self.substeps(dt)
        s = self._integrate(ops.to_spectral(x), ops, n, h, t, source)
        return ops.to_grid(s)

    def _source(self, ops: SphereOperators, x: Tensor, u: Tensor | None) -> Source:
        """``t -> spectral h_f (B, L, L)`` for the members' parameters."""
        if u is None or u.ndim != 2 or u.shape[0] != x.shape[0] or u.shape[1] != 2:
            got = None if u is None else tuple(u.shape)
            raise ConfigError(f"sphere parameters must be (B, 2) = (h_f0, sigma), got {got}")
        amp, sigma = (u[:, 0].to(x) / HOUR)[:, None], u[:, 1].to(x)[:, None]

        def source(t: float) -> Tensor:
            # height_forcing on the Gauss grid is (h_f0/3600)·merid(θ)·cos(λ − λ_c): all in
            # the zonal wavenumber 1, so its transform is one Legendre column (no l = 0 part:
            # exactly mass-neutral).
            lon_c = 2 * math.pi * t / self.forcing_lon_period
            lat_c = self.forcing_lat_amplitude * math.sin(2 * math.pi * t / self.forcing_lat_period)
            merid = torch.exp(-((ops.lat_g[None, :] - lat_c) ** 2) / sigma**2)  # (B, nlat_g)
            return ops.gauss.sht_wavenumber_one(amp * merid, lon_c)

        return source

    def _integrate(
        self, s: Tensor, ops: SphereOperators, n: int, h: float, t: float, source: Source | None
    ) -> Tensor:
        """``n`` sub-steps of length ``h``: Heun, AB2, then AB3, each followed by the exact
        hyperdiffusion factor."""
        damp = hyperdiffusion_factor(ops, h, self.hyperdiffusion_time, self.hyperdiffusion_order)

        def rhs(state: Tensor, time: float) -> Tensor:
            return swe_tendency(state, ops, self.gravity, None if source is None else source(time))

        hist: list[Tensor] = []  # tendencies at the last (up to) three sub-step starts
        for k in range(n):
            tk = t + k * h
            f0 = rhs(s, tk)
            hist = [f0, *hist[:2]]
            if k == 0:
                # Heun: a second-order self-starting step keeps the scheme third order.
                f1 = rhs(s + h * f0, tk + h)
                s = damp * (s + 0.5 * h * (f0 + f1))
            elif k == 1:
                s = damp * (s + h * (1.5 * hist[0] - 0.5 * hist[1]))
            else:
                # s + h(23 f₀ − 16 f₁ + 5 f₂)/12 as three fused multiply-adds, then the damping.
                s = torch.add(s, hist[0], alpha=23 * h / 12)
                s.add_(hist[1], alpha=-16 * h / 12).add_(hist[2], alpha=5 * h / 12).mul_(damp)
        return s

    # ----------------------------------------------------------------- parameters and states

    def param_bounds(self) -> Tensor:
        """Prior support of ``(h_f0 [m/h], sigma [rad])``, ``(2, 2)`` float64."""
        return torch.tensor(list(PARAM_BOUNDS.values()), dtype=torch.float64)

    def sample_params(self, n: int, gen: torch.Generator) -> Tensor:
        """``h_f0 ~ U(0.1, 30)`` m/h and ``sigma ~ U(1, 4)`` rad, float64 ``(n, 2)``."""
        lo = torch.tensor([b[0] for b in PARAM_BOUNDS.values()], dtype=torch.float64)
        hi = torch.tensor([b[1] for b in PARAM_BOUNDS.values()], dtype=torch.float64)
        r = torch.rand(n, 2, generator=gen, dtype=torch.float64, device=gen.device).cpu()
        return lo + (hi - lo) * r

    def initial_state(
        self, u: Tensor, gen: torch.Generator, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """Balanced states ``(B, 3, nlat, nlon)`` on the device of ``u``.

        Solid-body zonal flow ``u_φ = u0 cos θ`` plus a seeded non-divergent perturbation
        (vorticity in degrees 2..8, RMS wind ``perturbation_wind``); the height solves the
        nonlinear balance equation ``∇²(g h + K) = k·∇×(η V)`` with global mean ``H``, so the
        initial divergence tendency vanishes (no gravity-wave shock).
        """
        b = u.shape[0]
        ops = self.operators(u.device, dtype)
        lat, lon = equiangular_grid(self.nlat, self.nlon)
        bg = williamson2(lat, lon, self.zonal_wind, 0.0, self.radius, self.omega, self.gravity)
        bg = bg.to(u.device, dtype)
        zeta_bg = ops.to_spectral(bg[None])[:, 1]  # (1, L, L)
        pert = self._perturbation(ops, 1 if self.init == "shared" else b, gen, dtype)
        zeta = (zeta_bg + pert.to(u.device)).expand(b, -1, -1)
        s = torch.stack([torch.zeros_like(zeta), zeta, torch.zeros_like(zeta)], dim=1)
        s[:, 0] = self._balanced_height(ops, s)
        x = ops.to_grid(s)
        x[:, 0] += self.mean_depth
        return x

    def _perturbation(
        self, ops: SphereOperators, b: int, gen: torch.Generator, dtype: torch.dtype
    ) -> Tensor:
        """Random vorticity coefficients ``(b, L, L)`` in degrees 2..8 scaled to the RMS wind."""
        lm = ops.lmax
        shape = (b, lm, lm, 2)
        z = torch.randn(shape, generator=gen, dtype=dtype, device=gen.device).cpu()
        z = torch.view_as_complex(z.contiguous()).to(ops.ll1.device)
        z[..., 0] = z[..., 0].real  # m = 0 coefficients of a real field are real
        deg = torch.arange(lm, device=z.device)[:, None]
        order = torch.arange(lm, device=z.device)[None, :]
        z = z * ((deg >= 2) & (deg <= 8) & (order <= deg))
        uv = ops.ivsht(ops.invlap * torch.stack([z, torch.zeros_like(z)], dim=1) / ops.radius)
        w = area_weights(self.nlat, self.nlon).to(uv)
        rms = ((uv**2).sum(dim=1) * w).sum(dim=(-2, -1)).div(4 * math.pi).sqrt()
        return z * (self.perturbation_wind / rms)[:, None, None]

    def _balanced_height(self, ops: SphereOperators, s: Tensor) -> Tensor:
        """Spectral height deviation (zero mean) balancing non-divergent ``s`` ``(B, 3, L, L)``."""
        a = ops.radius
        zeta = ops.isht_g(s[:, 1])
        uv = ops.ivsht_g(ops.invlap * s[:, 1:] / a)
        curl = (ops.lap * a * ops.vsht_g(uv * (zeta + ops.coriolis_g)[:, None]))[:, 0]
        energy = ops.sht_g(0.5 * (uv**2).sum(dim=1))
        return (ops.invlap * curl - energy) / self.gravity * (ops.ll1 > 0)

    # ----------------------------------------------------------------- coordinates

    def coords(self) -> Tensor:
        """Grid points ``(nlat·nlon, 2)`` as ``(lat, lon)`` in radians, row-major like the
        flattened ``(H, W)`` field (latitude north to south outer, longitude inner)."""
        lat, lon = equiangular_grid(self.nlat, self.nlon)
        la, lo = torch.meshgrid(lat, lon, indexing="ij")
        return torch.stack([la.reshape(-1), lo.reshape(-1)], dim=1)

    def axes(self) -> dict[str, Tensor]:
        """``{"lat": (nlat,), "lon": (nlon,)}`` in **degrees** (lat 90 → −90, lon 0 → 360−Δ),
        uniformly spaced as the bilinear grid observers require."""
        lat, lon = equiangular_grid(self.nlat, self.nlon)
        return {"lat": torch.rad2deg(lat), "lon": torch.rad2deg(lon)}

    def area_weights(self) -> Tensor:
        """``(nlat, 1)`` weights with ``Σ w_i f_ij = ∫ f dA`` (m²)."""
        return area_weights(self.nlat, self.nlon, self.radius)

    def config(self) -> dict[str, object]:
        """Plain-data description: name, size, grid and every constant (SI units)."""
        ng, nlg = gauss_grid_size(self.lmax)
        n, h = self.substeps(self.frame_dt)
        out: dict[str, object] = {"name": "sphere"}
        out.update({f.name: getattr(self, f.name) for f in fields(self) if f.init})
        out.update(
            grid="equiangular",
            lat_order="north_to_south",
            axes_units="degrees",
            coords_units="radians",
            truncation=self.lmax - 1,
            gauss_grid=[ng, nlg],
            substep=h,
            substeps_per_frame=n,
            time_scheme="AB3 (Heun, AB2 start)",
            h_f0_units="m/h",
            sigma_units="radians",
            param_bounds={k: list(v) for k, v in PARAM_BOUNDS.items()},
            channels=list(self.channel_names),
            params=list(self.param_names),
        )
        return out
