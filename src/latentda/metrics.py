"""Verification scores of an ensemble ``E`` ``(N, d)`` against a truth ``x`` ``(d,)``."""

from __future__ import annotations

import torch
from torch import Tensor


def rmse(estimate: Tensor, truth: Tensor) -> Tensor:
    """Root-mean-square error over the last axis: ``sqrt(mean((x̂ − x)²))``."""
    return torch.sqrt(((estimate - truth) ** 2).mean(-1))


def relative_rmse(estimate: Tensor, truth: Tensor) -> Tensor:
    """``sqrt(Σ(x̂ − x)² / Σ x²)`` over the last axis (DESIGN section 5.1)."""
    return torch.sqrt(((estimate - truth) ** 2).sum(-1) / (truth**2).sum(-1))


def param_relative_error(estimate: Tensor, truth: Tensor) -> Tensor:
    """``mean_k |û_k − u_k| / |u_k|`` over the last axis (the ``p`` parameters, so each counts
    equally whatever its units; infinite if a true parameter is 0), float64."""
    u = truth.double()
    return ((estimate.double() - u).abs() / u.abs()).mean(-1)


def spread(E: Tensor) -> Tensor:
    """Ensemble spread ``sqrt(mean_i var_j E_ji)`` (unbiased variance), DAPPER's ``spread``."""
    return torch.sqrt(E.var(dim=0, unbiased=True).mean(-1))


def crps(E: Tensor, truth: Tensor) -> Tensor:
    """Mean over components of the ensemble CRPS

    ``CRPS_i = (1/N) Σ_j |E_ji − x_i| − 1/(2N²) Σ_jk |E_ji − E_ki|``,

    the pairwise term computed from the sorted members as ``(2/N²) Σ_j (2j − N − 1) E_(j)``
    (``O(N log N)`` per component, memory ``O(N d)``).
    """
    n = E.shape[0]
    skill = (E - truth).abs().mean(0)
    s, _ = torch.sort(E, dim=0)
    ranks = torch.arange(1, n + 1, dtype=E.dtype, device=E.device)[:, None]
    pair = (2.0 / n**2) * ((2.0 * ranks - n - 1.0) * s).sum(0)
    return (skill - 0.5 * pair).mean(-1)


def coverage(E: Tensor, truth: Tensor, level: float = 0.9) -> Tensor:
    """Fraction of components whose truth lies in the ensemble's central ``level`` interval
    (empirical quantiles with linear interpolation)."""
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=E.dtype, device=E.device)
    lo, hi = torch.quantile(E, q, dim=0)
    return ((truth >= lo) & (truth <= hi)).to(E.dtype).mean(-1)
