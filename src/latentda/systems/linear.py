"""Linear Gaussian system ``x_{k+1} = M x_k + w_k``, ``w_k ~ N(0, Q)``, with its exact
Kalman filter and Rauch–Tung–Striebel smoother (the oracles the ensemble methods are tested
against).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from latentda.errors import ConfigError


@dataclass(frozen=True)
class LinearSystem:
    """``x_{k+1} = M x_k (+ w_k)``.

    Parameters
    ----------
    M
        Propagator ``(d, d)``.
    Q
        Process-noise covariance ``(d, d)``; ``None`` means deterministic.
    dt
        Nominal step (the propagator already is one step; ``dt`` only labels time).
    """

    M: Tensor
    Q: Tensor | None = None
    dt: float = 1.0
    param_names: tuple[str, ...] = ()
    _chol_q: Tensor | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.M.ndim != 2 or self.M.shape[0] != self.M.shape[1]:
            raise ConfigError(f"linear system needs a square M, got shape {tuple(self.M.shape)}")
        if self.Q is not None:
            if self.Q.shape != self.M.shape:
                raise ConfigError(
                    f"linear system: Q has shape {tuple(self.Q.shape)}, M {tuple(self.M.shape)}"
                )
            object.__setattr__(self, "_chol_q", torch.linalg.cholesky(self.Q))

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (self.M.shape[0],)

    def step(
        self, x: Tensor, u: Tensor | None = None, dt: float | None = None, t: float = 0.0
    ) -> Tensor:
        """Deterministic part ``M x`` for states ``(B, d)`` (rows)."""
        return x @ self.M.T

    def add_process_noise(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """``x + w`` with ``w ~ N(0, Q)`` drawn per row of ``x`` ``(B, d)``."""
        if self._chol_q is None:
            return x
        w = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        return x + w @ self._chol_q.T

    def sample_params(self, n: int, gen: torch.Generator) -> Tensor:
        return torch.empty(n, 0)

    def initial_state(self, u: Tensor, gen: torch.Generator) -> Tensor:
        return torch.randn(u.shape[0], self.M.shape[0], generator=gen, dtype=self.M.dtype)

    def coords(self) -> Tensor:
        return torch.arange(self.M.shape[0], dtype=torch.float64)[:, None]


@dataclass(frozen=True)
class KalmanResult:
    """Kalman filter output over ``T`` observation times.

    Attributes
    ----------
    mean_f, mean_a
        Forecast and analysis means ``(T, d)``.
    cov_f, cov_a
        Forecast and analysis covariances ``(T, d, d)``.
    """

    mean_f: Tensor
    cov_f: Tensor
    mean_a: Tensor
    cov_a: Tensor


def kalman_update(
    mean: Tensor, cov: Tensor, y: Tensor, H: Tensor, R: Tensor
) -> tuple[Tensor, Tensor]:
    """One exact Kalman analysis.

    ``K = P Hᵀ (H P Hᵀ + R)⁻¹``, ``m_a = m + K (y − H m)``, ``P_a = (I − K H) P`` in the
    symmetric Joseph form. Shapes: ``mean (d,)``, ``cov (d, d)``, ``y (m,)``, ``H (m, d)``,
    ``R (m, m)``.
    """
    S = H @ cov @ H.T + R
    K = torch.linalg.solve(S, H @ cov).T
    mean_a = mean + K @ (y - H @ mean)
    IKH = torch.eye(cov.shape[0], dtype=cov.dtype) - K @ H
    cov_a = IKH @ cov @ IKH.T + K @ R @ K.T
    return mean_a, 0.5 * (cov_a + cov_a.T)


def kalman_filter(
    M: Tensor,
    Q: Tensor | None,
    H: Tensor,
    R: Tensor,
    mean0: Tensor,
    cov0: Tensor,
    ys: Tensor,
    steps_per_obs: int = 1,
) -> KalmanResult:
    """Exact Kalman filter from ``x_0 ~ N(mean0, cov0)``.

    Each of the ``T`` cycles forecasts ``steps_per_obs`` steps (``P ← M P Mᵀ + Q``) and then
    assimilates ``ys[k]`` ``(m,)``. Returns forecast and analysis moments, ``(T, d)`` and
    ``(T, d, d)``.
    """
    mean, cov = mean0, cov0
    mf, pf, ma, pa = [], [], [], []
    for y in ys:
        for _ in range(steps_per_obs):
            mean = M @ mean
            cov = M @ cov @ M.T + (Q if Q is not None else 0.0)
        mf.append(mean)
        pf.append(cov)
        mean, cov = kalman_update(mean, cov, y, H, R)
        ma.append(mean)
        pa.append(cov)
    return KalmanResult(torch.stack(mf), torch.stack(pf), torch.stack(ma), torch.stack(pa))


def rts_smoother(M: Tensor, kf: KalmanResult, steps_per_obs: int = 1) -> tuple[Tensor, Tensor]:
    """Rauch–Tung–Striebel smoother over the observation times of ``kf``.

    With ``F = M^{steps_per_obs}`` the cycle-to-cycle propagator (and the forecast covariances of
    ``kf`` including the process noise), the backward pass is
    ``G_k = P^a_k Fᵀ (P^f_{k+1})⁻¹``, ``m^s_k = m^a_k + G_k (m^s_{k+1} − m^f_{k+1})``,
    ``P^s_k = P^a_k + G_k (P^s_{k+1} − P^f_{k+1}) G_kᵀ``.

    Returns
    -------
    (mean_s, cov_s)
        Smoothed moments ``(T, d)`` and ``(T, d, d)``.
    """
    F = torch.linalg.matrix_power(M, steps_per_obs)
    T = kf.mean_a.shape[0]
    ms = [kf.mean_a[-1]]
    ps = [kf.cov_a[-1]]
    for k in range(T - 2, -1, -1):
        G = torch.linalg.solve(kf.cov_f[k + 1], F @ kf.cov_a[k]).T
        ms.append(kf.mean_a[k] + G @ (ms[-1] - kf.mean_f[k + 1]))
        ps.append(kf.cov_a[k] + G @ (ps[-1] - kf.cov_f[k + 1]) @ G.T)
    return torch.stack(ms[::-1]), torch.stack(ps[::-1])
