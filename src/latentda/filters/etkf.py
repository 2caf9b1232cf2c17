"""Square-root ensemble transform Kalman filter (ETKF), symmetric square root."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from latentda.filters.base import PostProcess, observation_space
from latentda.filters.ensemble import mean_anomalies
from latentda.observations.observer import Observer


def etkf_transform(Ys: Tensor, dy: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Ensemble-space ETKF solution, batched over leading axes.

    With ``C = Ys diag(ρ) Ysᵀ + (N−1) I = V diag(λ) Vᵀ`` (``ρ`` the optional localisation
    weights of the readings):

    - mean weights ``w = C⁻¹ Ys diag(ρ) dy`` ``(..., N)``,
    - transform ``T = V diag(√((N−1)/λ)) Vᵀ`` ``(..., N, N)``, the symmetric square root of
      ``(N−1) C⁻¹``. ``T 1 = 1`` because ``Ysᵀ 1 = 0``, so the analysis stays mean-preserving.

    The analysis is ``E_a = mean + (w + T) A`` with ``A`` the forecast anomalies (rows).

    Parameters
    ----------
    Ys
        Standardised observed anomalies ``(..., N, m)``.
    dy
        Standardised innovation ``(..., m)``.
    weights
        Localisation weights ``(..., m)`` in [0, 1] or ``None``.
    """
    n = Ys.shape[-2]
    Yw = Ys if weights is None else Ys * weights.unsqueeze(-2)
    C = Yw @ Ys.transpose(-1, -2)
    C = C + (n - 1) * torch.eye(n, dtype=Ys.dtype, device=Ys.device)
    lam, V = torch.linalg.eigh(C)
    rhs = (Yw @ dy.unsqueeze(-1)).squeeze(-1)
    w = (V @ ((V.transpose(-1, -2) @ rhs.unsqueeze(-1)) / lam.unsqueeze(-1))).squeeze(-1)
    T = (V * torch.sqrt((n - 1) / lam).unsqueeze(-2)) @ V.transpose(-1, -2)
    return w, T


@dataclass(frozen=True)
class ETKF:
    """Global square-root ETKF (Hunt et al. 2007) with DAPPER-style post-processing.

    Parameters
    ----------
    inflation
        Multiplicative inflation of the analysis anomalies (DAPPER's ``infl``).
    rotate
        Random mean-preserving rotation of the analysis members (DAPPER's ``rot``).
    """

    inflation: float = 1.0
    rotate: bool = False
    _post: PostProcess = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_post", PostProcess(self.inflation, self.rotate))

    def analysis(
        self, ensemble: Tensor, y: Tensor, observer: Observer, gen: torch.Generator
    ) -> Tensor:
        """ETKF analysis of ``ensemble`` ``(N, d)`` given ``y`` ``(m,)`` (NaN = missing)."""
        obs = observation_space(ensemble, y, observer)
        if obs is None:
            return ensemble
        mu, A = mean_anomalies(ensemble)
        w, T = etkf_transform(obs.Ys, obs.dy)
        Ea = mu + (w.unsqueeze(0) + T) @ A
        return self._post(Ea, gen)
