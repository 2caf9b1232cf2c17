"""Stochastic (perturbed-observations) EnKF."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from latentda.filters.base import PostProcess, observation_space
from latentda.filters.ensemble import mean_anomalies
from latentda.observations.observer import Observer


@dataclass(frozen=True)
class StochasticEnKF:
    """Perturbed-observations EnKF (Burgers et al. 1998), in ensemble space.

    Each member assimilates its own perturbed observation ``y + ε_j``, ``ε_j ~ N(0, R)``, with
    the perturbations centred and rescaled by ``√(N/(N−1))`` (as DAPPER does) so the mean
    update is exactly the Kalman one and their variance stays ``R``. In standardised units
    (``Ys``, ``D_j = (y + ε_j − H x_j)/σ``):

    ``E_a = E + D Ysᵀ (Ys Ysᵀ + (N−1) I)⁻¹ A``,

    which is ``x_j + K (y + ε_j − H x_j)`` with ``K = Aᵀ Ys (Ysᵀ Ys + (N−1) I)⁻¹ /σ`` by the
    push-through identity, at ``O(N²)`` instead of ``O(m²)`` cost.
    """

    inflation: float = 1.0
    rotate: bool = False
    _post: PostProcess = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_post", PostProcess(self.inflation, self.rotate))

    def analysis(
        self, ensemble: Tensor, y: Tensor, observer: Observer, gen: torch.Generator
    ) -> Tensor:
        """Perturbed-obs analysis of ``ensemble`` ``(N, d)`` given ``y`` ``(m,)``."""
        obs = observation_space(ensemble, y, observer)
        if obs is None:
            return ensemble
        n = ensemble.shape[0]
        _, A = mean_anomalies(ensemble)
        eps = torch.randn(obs.HE.shape, generator=gen, dtype=ensemble.dtype)
        eps = (eps - eps.mean(dim=0)) * math.sqrt(n / (n - 1))
        y_std = y[obs.index].to(ensemble.dtype) / obs.std
        D = y_std + eps - obs.HE / obs.std
        C = obs.Ys @ obs.Ys.T + (n - 1) * torch.eye(n, dtype=ensemble.dtype)
        W = torch.linalg.solve(C, (D @ obs.Ys.T).T).T
        return self._post(ensemble + W @ A, gen)
