"""Latent dynamics on VAE latents ("VAE-dyn", DESIGN 5.3): a residual MLP map.

.. math::
    z_{k+1} = z_k + f([z_k, u, φ(k)]),

with ``z ∈ R^L`` the VAE state latent (usually the encoder means ``μ_x`` of consecutive frames),
``u ∈ R^{d_u}`` the normalised parameters (``d_u = 0`` allowed) and ``φ(k)`` the phase of the
data's known periodic forcing at frame ``k`` when there is one (:class:`ForcingClock`, as the
LDNet gets it). One step is one frame.
It exists to reproduce the paper's surrogate comparison, where VAE-dyn is expected to be poor:
the VAE latent space is not organised for time stepping, unlike LDNet's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentda.errors import DataError
from latentda.schema import non_negative, parse, positive, to_dict
from latentda.surrogates.layers import ForcingClock, concat_inputs, mlp


@dataclass
class LatentDynamicsConfig:
    """Architecture of a :class:`LatentDynamics` map (``latent_dim`` = the VAE's ``L``)."""

    latent_dim: int
    n_params: int = 0
    hidden: int = 256
    layers: int = 2
    activation: Literal["tanh", "gelu", "silu"] = "silu"
    seed: int = 0

    def validate(self, where: str = "latent_dynamics") -> None:
        """Raise :class:`ConfigError` naming the first bad key."""
        positive(where, latent_dim=self.latent_dim, hidden=self.hidden, layers=self.layers)
        non_negative(where, n_params=self.n_params)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able plain dict (inverse of :meth:`from_dict`)."""
        return to_dict(self)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], where: str = "latent_dynamics"
    ) -> LatentDynamicsConfig:
        """Validated config from a plain dict; unknown keys or bad values raise ConfigError."""
        return parse(cls, data, where)


class LatentDynamics(nn.Module):
    """Residual MLP step ``z ↦ z + f([z, u])`` and its rollout.

    The last layer of ``f`` starts at zero, so an untrained model is the persistence forecast
    ``z_{k+1} = z_k`` (a sensible baseline that rollouts cannot blow up from).
    """

    def __init__(self, config: LatentDynamicsConfig, clock: ForcingClock | None = None) -> None:
        super().__init__()
        config.validate()
        self.config = c = config
        self.clock = clock if clock is not None and clock.periods else None
        n_in = c.latent_dim + c.n_params + (self.clock.dim if self.clock else 0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            self.f = mlp(n_in, c.hidden, c.latent_dim, c.layers, c.activation)
        last = self.f[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def _params(self, z: Tensor, u: Tensor | None) -> Tensor:
        d_u = self.config.n_params
        if u is None:
            if d_u:
                raise DataError(f"latent dynamics needs parameters u of size {d_u}")
            return z.new_zeros(*z.shape[:-1], 0)
        if u.shape[-1] != d_u:
            raise DataError(f"latent dynamics expects u (…, {d_u}), got {tuple(u.shape)}")
        return u

    def step(self, z: Tensor, u: Tensor | None = None, k: float | Tensor = 0.0) -> Tensor:
        """One frame from frame ``k``: ``z`` ``(…, L)``, ``u`` ``(…, d_u)`` or ``None`` ->
        ``(…, L)``; ``k`` (float or broadcasting to ``(…,)``) matters only with a clock."""
        parts = [z, self._params(z, u)]
        if self.clock is not None:
            parts.append(self.clock.features(k, z))
        return z + self.f(concat_inputs(parts))

    def forward(self, z: Tensor, u: Tensor | None = None, k: float | Tensor = 0.0) -> Tensor:
        """Alias of :meth:`step`."""
        return self.step(z, u, k)

    def rollout(self, z0: Tensor, u: Tensor | None, steps: int) -> Tensor:
        """Free rollout from ``z0`` ``(B, L)`` with fixed ``u`` ``(B, d_u)``: ``(B, steps+1, L)``,
        index 0 being ``z0`` itself."""
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        zs = [z0]
        for k in range(steps):
            zs.append(self.step(zs[-1], u, float(k)))
        return torch.stack(zs, dim=1)


def dyn_loss(
    model: LatentDynamics,
    z_target: Tensor,
    u: Tensor | None = None,
    teacher_forcing: bool = False,
) -> Tensor:
    """MSE between predicted and target latent trajectories ``z_target`` ``(B, T, L)``, ``T >= 2``.

    Free-running (default): roll out ``T − 1`` steps from ``z_target[:, 0]`` and compare frames
    ``1..T−1`` (what the surrogate is judged on; gradients flow through the whole rollout).
    ``teacher_forcing=True``: one-step predictions from every true ``z_k``, compared with
    ``z_{k+1}`` (easier, better conditioned early in training, but blind to error growth).
    ``u`` is ``(B, d_u)`` or ``None`` when ``d_u = 0``. Targets are usually the VAE encoder
    means, detached by the caller so that this loss does not reshape the VAE.
    """
    if z_target.ndim != 3 or z_target.shape[1] < 2:
        raise DataError(f"dyn_loss expects targets (B, T >= 2, L), got {tuple(z_target.shape)}")
    if teacher_forcing:
        uk = None if u is None else u.unsqueeze(1).expand(-1, z_target.shape[1] - 1, -1)
        frames = torch.arange(z_target.shape[1] - 1, dtype=torch.float64)[None]  # (1, T − 1)
        pred = model.step(z_target[:, :-1], uk, frames)
    else:
        pred = model.rollout(z_target[:, 0], u, z_target.shape[1] - 1)[:, 1:]
    return F.mse_loss(pred, z_target[:, 1:])
