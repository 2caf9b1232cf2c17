"""Square-root ensemble transform Kalman filter (ETKF), symmetric square root."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from latentda.filters.base import EnsembleKalmanFilter, ObsSpace
from latentda.filters.ensemble import mean_anomalies
from latentda.observations.observer import Observer


def etkf_transform(Ys: Tensor, dy: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Ensemble-space ETKF solution, batched over leading axes.

    With ``G = Ys diag(√ρ)`` (``ρ`` the optional localisation weights of the readings),
    ``a = N − 1`` and ``C = G Gᵀ + a I``:

    - mean weights ``w = C⁻¹ G √ρ dy`` ``(..., N)``,
    - transform ``T = (a C⁻¹)^{1/2}`` ``(..., N, N)``, the symmetric square root. ``T 1 = 1``
      because ``Gᵀ 1 = 0``, so the analysis ``E_a = mean + (w + T) A`` is mean-preserving.

    The eigen-problem is solved in the smaller of the two spaces: for ``N <= m`` on
    ``C = V diag(λ) Vᵀ`` (``T = V diag(√(a/λ)) Vᵀ``); for ``m < N`` on ``GᵀG = V diag(s²) Vᵀ``,
    where ``w = G V diag(1/(a + s²)) Vᵀ d̃`` and ``T = I + G V diag(φ(s²)) Vᵀ Gᵀ`` with
    ``φ(x) = −1/(√(a + x)(√a + √(a + x)))`` (finite at ``x = 0``: no division by ``s``).

    Parameters
    ----------
    Ys
        Standardised observed anomalies ``(..., N, m)``.
    dy
        Standardised innovation ``(..., m)``.
    weights
        Localisation weights ``(..., m)`` in [0, 1] or ``None``.
    """
    n, m = Ys.shape[-2], Ys.shape[-1]
    a = float(n - 1)
    if weights is not None:
        root = torch.sqrt(weights)
        G, d = Ys * root.unsqueeze(-2), dy * root
    else:
        G, d = Ys, dy
    eye = torch.eye(n, dtype=Ys.dtype, device=Ys.device)
    Gt = G.transpose(-1, -2)
    if n <= m:
        lam, V = torch.linalg.eigh(G @ Gt + a * eye)
        Vt = V.transpose(-1, -2)
        rhs = G @ d.unsqueeze(-1)
        w = (V @ ((Vt @ rhs) / lam.unsqueeze(-1))).squeeze(-1)
        T = (V * torch.sqrt(a / lam).unsqueeze(-2)) @ Vt
        return w, T
    s2, V = torch.linalg.eigh(Gt @ G)
    s2 = s2.clamp_min(0.0)  # round-off can make a zero eigenvalue slightly negative
    GV = G @ V  # (..., N, m)
    Vt_d = (V.transpose(-1, -2) @ d.unsqueeze(-1)).squeeze(-1)
    w = (GV @ (Vt_d / (a + s2)).unsqueeze(-1)).squeeze(-1)
    root_ax = torch.sqrt(a + s2)
    phi = -1.0 / (root_ax * (math.sqrt(a) + root_ax))
    T = eye + (GV * phi.unsqueeze(-2)) @ GV.transpose(-1, -2)
    return w, T


@dataclass(frozen=True)
class ETKF(EnsembleKalmanFilter):
    """Global square-root ETKF (Hunt et al. 2007) with DAPPER-style post-processing.

    Parameters
    ----------
    inflation
        Multiplicative inflation of the analysis anomalies (DAPPER's ``infl``).
    rotate
        Random mean-preserving rotation of the analysis members (DAPPER's ``rot``).
    """

    def update(
        self, ensemble: Tensor, y: Tensor, obs: ObsSpace, observer: Observer, gen: torch.Generator
    ) -> Tensor:
        mu, A = mean_anomalies(ensemble)
        w, T = etkf_transform(obs.Ys, obs.dy)
        return mu + (w.unsqueeze(0) + T) @ A
