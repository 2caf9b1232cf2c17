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
