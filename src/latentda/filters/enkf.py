"""Stochastic (perturbed-observations) EnKF."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from latentda.filters.base import EnsembleKalmanFilter, ObsSpace
from latentda.filters.ensemble import mean_anomalies
from latentda.observations.observer import Observer


@dataclass(frozen=True)
class StochasticEnKF(EnsembleKalmanFilter):
    """Perturbed-observations EnKF (Burgers et al. 1998), in ensemble space.

    Each member assimilates its own perturbed observation ``y + ε_j``, ``ε_j ~ N(0, R)``, with
    the perturbations centred and rescaled by ``√(N/(N−1))`` (as DAPPER does) so the mean
    update is exactly the Kalman one and their variance stays ``R``. In standardised units
    (``Ys``, ``D_j = (y + ε_j − H x_j)/σ``):

    ``E_a = E + D Ysᵀ (Ys Ysᵀ + (N−1) I)⁻¹ A``,

    which is ``x_j + K (y + ε_j − H x_j)`` with ``K = Aᵀ Ys (Ysᵀ Ys + (N−1) I)⁻¹ /σ`` by the
    push-through identity, at ``O(N²)`` instead of ``O(m²)`` cost.
    """

    def update(
        self, ensemble: Tensor, y: Tensor, obs: ObsSpace, observer: Observer, gen: torch.Generator
    ) -> Tensor:
        n = ensemble.shape[0]
        _, A = mean_anomalies(ensemble)
        eps = torch.randn(obs.HE.shape, generator=gen, dtype=ensemble.dtype)
        eps = (eps - eps.mean(dim=0)) * math.sqrt(n / (n - 1))
        y_std = y[obs.index].to(ensemble.dtype) / obs.std
        D = y_std + eps - obs.HE / obs.std
        C = obs.Ys @ obs.Ys.T + (n - 1) * torch.eye(n, dtype=ensemble.dtype)
        W = torch.linalg.solve(C, (D @ obs.Ys.T).T).T
        return ensemble + W @ A
