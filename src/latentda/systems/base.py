"""The :class:`System` protocol every full-order model satisfies."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class System(Protocol):
    """A batched dynamical system ``x_{k+1} = step(x_k, u, dt)``.

    Attributes
    ----------
    state_shape
        Shape of one state, e.g. ``(40,)`` or ``(2, 64, 64)``.
    param_names
        Names of the per-member parameters ``u`` (may be empty).
    dt
        Default model time step.
    """

    state_shape: tuple[int, ...]
    param_names: tuple[str, ...]
    dt: float

    def step(self, x: Tensor, u: Tensor, dt: float) -> Tensor:
        """Advance states ``x`` of shape ``(B, *state_shape)`` with parameters ``u`` ``(B, p)``."""
        ...

    def sample_params(self, n: int, gen: torch.Generator) -> Tensor:
        """Draw ``n`` parameter vectors from the prior, shape ``(n, p)``."""
        ...

    def initial_state(self, u: Tensor, gen: torch.Generator) -> Tensor:
        """Initial states for parameters ``u`` ``(B, p)``, shape ``(B, *state_shape)``."""
        ...

    def coords(self) -> Tensor:
        """Grid-point coordinates, shape ``(P, space_dim)`` with ``P = prod(state_shape)``."""
        ...


def integrate(system: System, x: Tensor, u: Tensor, steps: int, dt: float | None = None) -> Tensor:
    """Apply ``system.step`` ``steps`` times; ``x`` is ``(B, *state_shape)``."""
    h = system.dt if dt is None else dt
    for _ in range(steps):
        x = system.step(x, u, h)
    return x
