"""Lorenz-96: dx_i/dt = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + F on a periodic ring."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from latentda.errors import ConfigError


def lorenz96_tendency(x: Tensor, forcing: Tensor | float) -> Tensor:
    """Right-hand side of Lorenz-96.

    Parameters
    ----------
    x
        States ``(..., d)``; the ring is the last axis (rolled along it only, so any
        leading batch shape works and memory stays ``O(numel)``).
    forcing
        ``F``, a scalar or a tensor broadcastable to ``x`` (e.g. ``(B, 1)`` per member).

    Returns
    -------
    Tensor
        ``dx/dt`` with the shape of ``x``.
    """
    return (torch.roll(x, -1, -1) - torch.roll(x, 2, -1)) * torch.roll(x, 1, -1) - x + forcing


@dataclass(frozen=True)
class Lorenz96:
    """Lorenz-96 with classical RK4 time stepping.

    Parameters
    ----------
    dim
        Number of variables ``d`` (>= 4), up to ``10^6`` and beyond.
    forcing
        Default forcing ``F`` (used when the parameter tensor is empty).
    dt
        Default RK4 step.
    """

    dim: int = 40
    forcing: float = 8.0
    dt: float = 0.05

    param_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.dim < 4:
            raise ConfigError(f"lorenz96 needs dim >= 4, got {self.dim}")
        if self.dt <= 0:
            raise ConfigError(f"lorenz96 needs dt > 0, got {self.dt}")

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    def _forcing(self, u: Tensor | None) -> Tensor | float:
        # A parameter column, when given, is a per-member forcing (B, 1) broadcast over the ring.
        if u is None or u.numel() == 0:
            return self.forcing
        return u[..., :1]

    def tendency(self, x: Tensor, u: Tensor | None = None) -> Tensor:
        """``dx/dt`` for states ``(B, d)``."""
        return lorenz96_tendency(x, self._forcing(u))

    def step(
        self, x: Tensor, u: Tensor | None = None, dt: float | None = None, t: float = 0.0
    ) -> Tensor:
        """One RK4 step of states ``(B, d)`` (or ``(d,)``); ``u`` is ``(B, 1)`` or empty."""
        h = self.dt if dt is None else dt
        f = self._forcing(u)
        k1 = lorenz96_tendency(x, f)
        k2 = lorenz96_tendency(x + 0.5 * h * k1, f)
        k3 = lorenz96_tendency(x + 0.5 * h * k2, f)
        k4 = lorenz96_tendency(x + h * k3, f)
        return x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)

    def sample_params(self, n: int, gen: torch.Generator) -> Tensor:
        """The forcing is fixed: an empty ``(n, 0)`` parameter tensor."""
        return torch.empty(n, 0)

    def initial_state(
        self, u: Tensor, gen: torch.Generator, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """``F`` plus a unit Gaussian perturbation, ``(B, d)``; spin it up before use."""
        b = u.shape[0]
        noise = torch.randn(b, self.dim, generator=gen, dtype=dtype)
        return self.forcing + noise

    def coords(self) -> Tensor:
        """Grid indices ``0..d-1`` as ``(d, 1)``; the domain is periodic with length ``d``."""
        return torch.arange(self.dim, dtype=torch.float64)[:, None]

    @property
    def domain_lengths(self) -> tuple[float, ...]:
        """Periodic lengths of the domain along each space axis."""
        return (float(self.dim),)
