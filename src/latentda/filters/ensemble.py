"""Small pure functions on ensembles ``E`` of shape ``(N, d)`` (members as rows)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from latentda.errors import FilterDivergence


def mean_anomalies(E: Tensor) -> tuple[Tensor, Tensor]:
    """Ensemble mean ``(d,)`` and anomalies ``A = E − mean`` ``(N, d)``."""
    mu = E.mean(dim=0)
    return mu, E - mu


def inflate(E: Tensor, factor: float) -> Tensor:
    """Multiplicative inflation of the anomalies: ``mean + factor·(E − mean)``."""
    if factor == 1.0:
        return E
    mu, A = mean_anomalies(E)
    return mu + factor * A


def random_mean_preserving_orthogonal(n: int, gen: torch.Generator, dtype: torch.dtype) -> Tensor:
    """A random orthogonal ``(n, n)`` matrix ``Ω`` with ``Ω 1 = 1``.

    Built as ``V diag(1, Q) Vᵀ`` where ``V`` is an orthonormal basis whose first column is
    ``1/√n`` and ``Q`` is Haar-distributed on ``O(n − 1)``; applied to anomalies (``Ω A``) it
    keeps the ensemble mean and covariance and only rotates the members.
    """
    ones = torch.full((n, 1), 1.0 / math.sqrt(n), dtype=dtype)
    basis = torch.cat([ones, torch.randn(n, n - 1, generator=gen, dtype=dtype)], dim=1)
    V, _ = torch.linalg.qr(basis)
    V = V * torch.sign(V[0, 0] * ones[0, 0])  # first column exactly +1/√n direction
    G = torch.randn(n - 1, n - 1, generator=gen, dtype=dtype)
    Q, R = torch.linalg.qr(G)
    Q = Q * torch.sign(torch.diagonal(R))  # Haar measure (Mezzadri 2007)
    block = torch.eye(n, dtype=dtype)
    block[1:, 1:] = Q
    return V @ block @ V.T


def rotate(E: Tensor, gen: torch.Generator) -> Tensor:
    """Randomly rotate the anomalies of ``E`` ``(N, d)``, keeping mean and covariance."""
    mu, A = mean_anomalies(E)
    omega = random_mean_preserving_orthogonal(E.shape[0], gen, E.dtype).to(E.device)
    return mu + omega @ A


def gaussian_ensemble_exact(mean: Tensor, cov: Tensor, n: int, gen: torch.Generator) -> Tensor:
    """An ensemble ``(n, d)`` whose sample mean and covariance equal ``mean``, ``cov`` exactly.

    Requires ``n > d``: draws white noise, removes its sample mean, whitens it by its own sample
    covariance and recolours with ``chol(cov)``.
    """
    d = mean.shape[0]
    if n <= d:
        raise ValueError(f"an exact Gaussian ensemble needs n > d, got n={n}, d={d}")
    Z = torch.randn(n, d, generator=gen, dtype=mean.dtype)
    Z = Z - Z.mean(dim=0)
    S = Z.T @ Z / (n - 1)
    Z = Z @ torch.linalg.inv(torch.linalg.cholesky(S)).T
    return mean + Z @ torch.linalg.cholesky(cov).T


def ensemble_cov(E: Tensor) -> Tensor:
    """Sample covariance ``AᵀA/(N−1)`` ``(d, d)``."""
    _, A = mean_anomalies(E)
    return A.T @ A / (E.shape[0] - 1)


def clip_params(kappa: Tensor, d: int) -> Tensor:
    """Project the parameter columns of an augmented ensemble onto the prior's support.

    Parameters
    ----------
    kappa
        ``(N, d + p)``: ``d`` state (or latent) columns, then the normalised parameters ``u``.
    d
        Number of columns before the parameters.

    Returns
    -------
    Tensor
        ``[κ_{:, :d}, clamp(κ_{:, d:}, −1, 1)]`` ``(N, d + p)``, a new tensor.
    """
    return torch.cat([kappa[:, :d], kappa[:, d:].clamp(-1.0, 1.0)], dim=-1)


def check_finite(E: Tensor, frame: int, stage: str, method: str) -> None:
    """Raise :class:`FilterDivergence` naming ``method``, the ``stage`` (e.g. ``forecast``,
    ``analysis``) and the ``frame`` if any entry of ``E`` is NaN or Inf."""
    if not bool(torch.isfinite(E).all()):
        raise FilterDivergence(
            f"the {method} ensemble became non-finite (NaN/Inf) in the {stage} at frame {frame}"
        )
