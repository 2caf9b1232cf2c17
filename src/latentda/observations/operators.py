"""Observation operators ``H``: states ``(..., d)`` -> observed values ``(..., m)``.

Operators are plain differentiable torch functions, so the Jacobian of a nonlinear ``H``
comes from autograd (used by the EnSF likelihood score). Each operator knows the spatial
location of its readings (``locations``, ``(m, space_dim)``) for localisation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from latentda.errors import ConfigError


class ObservationOperator(ABC):
    """Base class: ``H(x)`` batched over leading axes of ``x``."""

    #: Number of observed values ``m``.
    out_dim: int
    #: Number of state variables ``d`` the operator reads.
    in_dim: int

    @abstractmethod
    def __call__(self, x: Tensor) -> Tensor:
        """Read states ``(..., d)``; returns ``(..., m)``."""

    def vjp(self, x: Tensor, v: Tensor) -> Tensor:
        """Vector-Jacobian product ``J_H(x)ᵀ v`` per row: ``x`` ``(B, d)``, ``v`` ``(B, m)``.

        The default differentiates ``H`` by autograd (exact for any differentiable operator);
        linear operators override it with their adjoint, which is cheaper.
        """
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self(xr), xr, grad_outputs=v)
        return grad

    @property
    @abstractmethod
    def locations(self) -> Tensor:
        """Reading coordinates ``(m, space_dim)``, in the units of the system's ``coords``."""

    def _check(self, x: Tensor) -> None:
        if x.shape[-1] != self.in_dim:
            raise ConfigError(
                f"observation operator reads states of size {self.in_dim}, got {x.shape[-1]}"
            )


class Identity(ObservationOperator):
    """``H = I``: every state variable is observed where it sits."""

    def __init__(self, dim: int) -> None:
        self.in_dim = self.out_dim = int(dim)

    def __call__(self, x: Tensor) -> Tensor:
        self._check(x)
        return x

    def vjp(self, x: Tensor, v: Tensor) -> Tensor:
        return v

    @property
    def locations(self) -> Tensor:
        return torch.arange(self.in_dim, dtype=torch.float64)[:, None]


class Subset(ObservationOperator):
    """Observe the state variables with the given indices, ``H x = x[indices]``."""

    def __init__(self, indices: Tensor | list[int], dim: int) -> None:
        idx = torch.as_tensor(indices, dtype=torch.long).flatten()
        if idx.numel() == 0:
            raise ConfigError("subset observer needs at least one index")
        if int(idx.min()) < 0 or int(idx.max()) >= dim:
            raise ConfigError(f"subset observer indices must lie in [0, {dim - 1}]")
        self.indices = idx
        self.in_dim = int(dim)
        self.out_dim = int(idx.numel())

    def __call__(self, x: Tensor) -> Tensor:
        self._check(x)
        return x[..., self.indices.to(x.device)]

    def vjp(self, x: Tensor, v: Tensor) -> Tensor:
        out = torch.zeros_like(x)
        return out.index_add_(-1, self.indices.to(x.device), v)

    @property
    def locations(self) -> Tensor:
        return self.indices.to(torch.float64)[:, None]


class PeriodicInterpolation(ObservationOperator):
    """Sensors at arbitrary positions ``p`` on a periodic 1-D grid of ``d`` nodes at ``0..d-1``.

    ``H x = (1 − w) x[i] + w x[(i + 1) mod d]`` with ``i = floor(p) mod d`` and ``w = p − floor(p)``
    (linear interpolation; a sensor on a node reads that node exactly).
    """

    def __init__(self, positions: Tensor | list[float], dim: int) -> None:
        pos = torch.as_tensor(positions, dtype=torch.float64).flatten()
        if pos.numel() == 0 or not torch.isfinite(pos).all():
            raise ConfigError("interpolating observer needs finite sensor positions")
        self.positions = pos
        base = torch.floor(pos)
        self._i0 = torch.remainder(base, dim).long()
        self._i1 = torch.remainder(self._i0 + 1, dim)
        self._w = pos - base
        self.in_dim = int(dim)
        self.out_dim = int(pos.numel())

    def __call__(self, x: Tensor) -> Tensor:
        self._check(x)
        w = self._w.to(device=x.device, dtype=x.dtype)
        return (1.0 - w) * x[..., self._i0.to(x.device)] + w * x[..., self._i1.to(x.device)]

    def vjp(self, x: Tensor, v: Tensor) -> Tensor:
        w = self._w.to(device=x.device, dtype=x.dtype)
        out = torch.zeros_like(x).index_add_(-1, self._i0.to(x.device), (1.0 - w) * v)
        return out.index_add_(-1, self._i1.to(x.device), w * v)

    @property
    def locations(self) -> Tensor:
        return torch.remainder(self.positions, self.in_dim)[:, None]


class LinearMap(ObservationOperator):
    """A general linear operator ``H`` ``(m, d)``; readings located at ``locations`` if given."""

    def __init__(self, H: Tensor, locations: Tensor | None = None) -> None:
        if H.ndim != 2:
            raise ConfigError(f"linear observation operator must be a matrix, got {H.ndim}-D")
        self.H = H
        self.out_dim, self.in_dim = (int(s) for s in H.shape)
        self._locations = locations

    def __call__(self, x: Tensor) -> Tensor:
        self._check(x)
        return x @ self.H.to(device=x.device, dtype=x.dtype).T

    def vjp(self, x: Tensor, v: Tensor) -> Tensor:
        return v @ self.H.to(device=x.device, dtype=x.dtype)

    @property
    def locations(self) -> Tensor:
        if self._locations is None:
            raise ConfigError("this linear observation operator has no reading locations")
        return self._locations


class Arctan(ObservationOperator):
    """``arctan(H_inner(x))``: the nonlinear observation of the EnSF Lorenz-96 benchmark."""

    def __init__(self, inner: ObservationOperator) -> None:
        self.inner = inner
        self.in_dim = inner.in_dim
        self.out_dim = inner.out_dim

    def __call__(self, x: Tensor) -> Tensor:
        return torch.atan(self.inner(x))

    def vjp(self, x: Tensor, v: Tensor) -> Tensor:
        hx = self.inner(x)
        return self.inner.vjp(x, v / (1.0 + hx * hx))

    @property
    def locations(self) -> Tensor:
        return self.inner.locations
