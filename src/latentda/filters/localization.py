"""Distances between grid points and readings, and localisation tapers."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from latentda.errors import ConfigError


class Distance(ABC):
    """A metric between point sets ``a`` ``(P, k)`` and ``b`` ``(m, k)``, returning ``(P, m)``."""

    @abstractmethod
    def pairwise(self, a: Tensor, b: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class EuclideanDistance(Distance):
    """Plain Euclidean distance ``‖a − b‖``."""

    def pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.cdist(a, b)


@dataclass(frozen=True)
class PeriodicDistance(Distance):
    """Euclidean distance on a torus with side ``lengths`` (one per space axis):
    per axis ``δ = min(|a − b| mod L, L − |a − b| mod L)``."""

    lengths: tuple[float, ...]

    def pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        L = torch.as_tensor(self.lengths, dtype=a.dtype, device=a.device)
        delta = torch.remainder((a[:, None, :] - b[None, :, :]).abs(), L)
        delta = torch.minimum(delta, L - delta)
        return torch.sqrt((delta * delta).sum(-1))


@dataclass(frozen=True)
class GreatCircleDistance(Distance):
    """Great-circle distance on a sphere of radius ``radius`` between points given as
    ``(latitude, longitude)`` in degrees (the sphere's grid axes).

    Haversine form, accurate for small separations as well as large ones:
    ``δ = 2 R asin √(sin²(Δφ/2) + cos φ_a cos φ_b sin²(Δλ/2))`` with latitudes ``φ`` and
    longitudes ``λ`` in radians; the result is in the units of ``radius`` (radians for 1).
    """

    radius: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.radius) and self.radius > 0):
            raise ConfigError(f"sphere radius must be finite and > 0, got {self.radius}")

    def pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        lat_a, lon_a = torch.deg2rad(a[:, 0])[:, None], torch.deg2rad(a[:, 1])[:, None]
        lat_b, lon_b = torch.deg2rad(b[:, 0])[None, :], torch.deg2rad(b[:, 1])[None, :]
        h = (
            torch.sin(0.5 * (lat_a - lat_b)) ** 2
            + torch.cos(lat_a) * torch.cos(lat_b) * torch.sin(0.5 * (lon_a - lon_b)) ** 2
        )
        # Round-off can lift h of antipodal points just above 1, outside asin's domain.
        return 2.0 * self.radius * torch.asin(torch.sqrt(h.clamp(0.0, 1.0)))


@dataclass(frozen=True)
class WithGlobalRows(Distance):
    """Distance for a state augmented with global variables (e.g. model parameters).

    State coordinates carry one trailing flag column: ``a`` is ``(P, k + 1)``, readings ``b``
    are ``(m, k)``. A row flagged ``> 0`` is global and lies at distance 0 from every reading,
    so any taper gives it weight 1 (a local analysis then assimilates all readings, as a
    global one would); other rows get ``inner.pairwise(a[:, :k], b)``.
    """

    inner: Distance

    def pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        local = self.inner.pairwise(a[:, :-1], b)
        return torch.where(a[:, -1:] > 0, torch.zeros_like(local), local)


def gaspari_cohn(r: Tensor) -> Tensor:
    """Gaspari & Cohn (1999) 5th-order compactly supported correlation, eq. (4.10).

    ``r = distance / c`` with ``c`` the half-width; the function is 1 at ``r = 0`` and exactly 0
    for ``r >= 2``.
    """
    r = r.abs()
    inner = ((((-0.25 * r + 0.5) * r + 0.625) * r - 5.0 / 3.0) * r) * r + 1.0
    rs = torch.where(r > 0, r, torch.ones_like(r))  # avoid 1/0 in the unused branch
    outer = (((((r / 12.0 - 0.5) * r + 0.625) * r + 5.0 / 3.0) * r - 5.0) * r) + 4.0
    outer = outer - 2.0 / (3.0 * rs)
    return torch.where(r <= 1.0, inner, torch.where(r < 2.0, outer, torch.zeros_like(r)))


#: DAPPER's convention: a localisation "radius" ``R`` means a Gaspari–Cohn half-width
#: ``c = 1.82 R`` (so the taper roughly matches a Gaussian of standard deviation ``R``).
GC_RADIUS_TO_HALF_WIDTH = 1.82


@dataclass(frozen=True)
class GaspariCohn:
    """Gaspari–Cohn R-localisation taper with length scale ``radius``.

    ``ρ(δ) = gaspari_cohn(δ / c)`` with half-width ``c = 1.82·radius`` (DAPPER's mapping, so
    settings and scores carry over); the support is ``δ < 2c``. ``radius = inf`` gives
    ``ρ ≡ 1`` (no localisation).
    """

    radius: float

    def __post_init__(self) -> None:
        if not self.radius > 0:
            raise ConfigError(f"localization_radius must be > 0, got {self.radius}")

    @property
    def half_width(self) -> float:
        return GC_RADIUS_TO_HALF_WIDTH * self.radius

    def __call__(self, dist: Tensor) -> Tensor:
        """Weights in [0, 1] with the shape of ``dist``."""
        if math.isinf(self.radius):
            return torch.ones_like(dist)
        return gaspari_cohn(dist / self.half_width)
