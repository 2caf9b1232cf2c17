"""The :class:`System` protocol every full-order model satisfies."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor
from tqdm.auto import tqdm


@runtime_checkable
class System(Protocol):
    """A batched dynamical system ``x(t + dt) = step(x(t), u, dt, t)``.

    Attributes
    ----------
    state_shape
        Shape of one state, e.g. ``(40,)`` or ``(2, 64, 64)``.
    param_names
        Names of the per-member parameters ``u`` (may be empty).
    dt
        Default model time step (for PDE systems: the frame spacing; ``step`` sub-steps
        internally as stability requires).
    """

    state_shape: tuple[int, ...]
    param_names: tuple[str, ...]
    dt: float

    def step(self, x: Tensor, u: Tensor, dt: float, t: float = 0.0) -> Tensor:
        """Advance states ``x`` ``(B, *state_shape)`` with parameters ``u`` ``(B, p)`` from
        time ``t`` by ``dt`` (``t`` matters only for time-dependent forcing)."""
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


def integrate(
    system: System, x: Tensor, u: Tensor, steps: int, dt: float | None = None, t0: float = 0.0
) -> Tensor:
    """Apply ``system.step`` ``steps`` times from time ``t0``; ``x`` is ``(B, *state_shape)``."""
    h = system.dt if dt is None else dt
    for k in range(steps):
        x = system.step(x, u, h, t0 + k * h)
    return x


@runtime_checkable
class FieldSystem(System, Protocol):
    """A PDE system whose states are gridded fields ``(C, H, W)`` saved as frames.

    Attributes
    ----------
    channel_names
        Names of the ``C`` output channels, e.g. ``("u", "v")``.
    periodic_axes
        Whether each of the two grid axes wraps around.
    frame_dt
        Model time between saved frames.
    n_frames
        Number of saved frames per trajectory.
    spinup_time
        Model time run from the initial state before frame 0.
    """

    channel_names: tuple[str, ...]
    periodic_axes: tuple[bool, bool]
    frame_dt: float
    n_frames: int
    spinup_time: float

    def axes(self) -> dict[str, Tensor]:
        """1-D coordinates of the two grid axes in order, e.g. ``{"y": (H,), "x": (W,)}``."""
        ...

    def config(self) -> dict[str, object]:
        """Plain-data description of the system (name, size, every physical constant)."""
        ...

    def param_bounds(self) -> Tensor:
        """Support of the (uniform) parameter prior, ``(p, 2)`` rows ``(low, high)``, float64;
        surrogates map parameters to ``[-1, 1]`` with it."""
        ...


def spin_up(system: FieldSystem, u: Tensor, x0: Tensor) -> tuple[Tensor, float]:
    """Frame 0 of trajectories with parameters ``u`` ``(B, p)`` from initial states ``x0``
    ``(B, C, H, W)``: the state after ``spinup_time`` and that model time.

    Frame ``k`` then follows by ``system.step(x, u, system.frame_dt, t)`` with ``t`` advanced
    by ``frame_dt`` per frame (as :func:`simulate_frames` does; filters interleave analyses).
    """
    if system.spinup_time > 0:
        return system.step(x0, u, system.spinup_time, 0.0), system.spinup_time
    return x0, 0.0


def simulate_frames(system: FieldSystem, u: Tensor, x0: Tensor, progress: bool = False) -> Tensor:
    """Run trajectories for parameters ``u`` ``(B, p)`` from initial states ``x0``
    ``(B, C, H, W)``: spin-up to ``spinup_time``, then ``n_frames`` frames every ``frame_dt``.

    Returns
    -------
    Tensor
        Frames ``(B, T, C, H, W)``; frame 0 is the state at ``t = spinup_time``.
    """
    x, t = spin_up(system, u, x0)
    frames = [x]
    for _ in tqdm(range(system.n_frames - 1), disable=not progress, desc="frames", leave=False):
        x = system.step(x, u, system.frame_dt, t)
        t += system.frame_dt
        frames.append(x)
    return torch.stack(frames, dim=1)
