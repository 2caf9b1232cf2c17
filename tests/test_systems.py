"""Physical and mathematical checks of the systems."""

import torch

from latentda.systems import LinearSystem, Lorenz96, kalman_filter, rts_smoother
from latentda.systems.base import integrate


def test_lorenz96_climatology_at_f8() -> None:
    """Long-run mean ≈ 2.3 and standard deviation ≈ 3.6 at F = 8 (Lorenz 1996; Sakov & Oke)."""
    model = Lorenz96(dim=40, forcing=8.0, dt=0.05)
    g = torch.Generator().manual_seed(0)
    x = model.initial_state(torch.empty(8, 0), g)
    x = integrate(model, x, torch.empty(8, 0), 500)  # spin-up, 25 time units
    samples = []
    for _ in range(400):  # 8 independent runs x 40 variables x 400 times
        x = integrate(model, x, torch.empty(8, 0), 5)
        samples.append(x)
    s = torch.stack(samples)
    assert abs(float(s.mean()) - 2.3) < 0.1
    assert abs(float(s.std()) - 3.6) < 0.1


def test_lorenz96_rk4_is_fourth_order() -> None:
    """Halving dt divides the one-unit integration error by about 2^4."""
    model = Lorenz96(dim=12)
    x0 = model.forcing + torch.linspace(-1, 1, 12, dtype=torch.float64)[None]
    ref = integrate(model, x0, torch.empty(1, 0), 1024, dt=1 / 1024)
    e1 = (integrate(model, x0, torch.empty(1, 0), 32, dt=1 / 32) - ref).abs().max()
    e2 = (integrate(model, x0, torch.empty(1, 0), 64, dt=1 / 64) - ref).abs().max()
    assert 13.0 < float(e1 / e2) < 19.0


def test_lorenz96_batched_equals_single_and_large_dim() -> None:
    model = Lorenz96(dim=1000)
    g = torch.Generator().manual_seed(1)
    x = model.initial_state(torch.empty(3, 0), g)
    batched = model.step(x)
    for i in range(3):
        torch.testing.assert_close(model.step(x[i : i + 1]), batched[i : i + 1], rtol=0, atol=0)
    # a per-member forcing column
    f = torch.tensor([[8.0], [10.0], [6.0]], dtype=torch.float64)
    out = model.step(x, f)
    torch.testing.assert_close(out[1:2], Lorenz96(dim=1000, forcing=10.0).step(x[1:2]))


def _posterior_by_least_squares(M, Q, H, R, m0, P0, ys):
    """Joint Gaussian posterior of (x_1..x_T) given y_1..y_T by one dense solve."""
    T, d = ys.shape[0], m0.shape[0]
    # prior of the stacked trajectory: x_k = M^k x_0 + sum_j M^{k-j} w_j
    Phi = torch.cat([torch.linalg.matrix_power(M, k + 1) for k in range(T)])
    cov = Phi @ P0 @ Phi.T
    for j in range(T):
        G = torch.zeros(T * d, d, dtype=M.dtype)
        for k in range(j, T):
            G[k * d : (k + 1) * d] = torch.linalg.matrix_power(M, k - j)
        cov = cov + G @ Q @ G.T
    mean = Phi @ m0
    Hb = torch.block_diag(*[H] * T)
    Rb = torch.block_diag(*[R] * T)
    K = cov @ Hb.T @ torch.linalg.inv(Hb @ cov @ Hb.T + Rb)
    post_mean = mean + K @ (ys.flatten() - Hb @ mean)
    post_cov = cov - K @ Hb @ cov
    return post_mean.reshape(T, d), post_cov


def test_kalman_filter_and_rts_smoother_match_batch_posterior() -> None:
    g = torch.Generator().manual_seed(2)
    d, m, T = 3, 2, 5
    M = torch.tensor([[0.9, 0.2, 0.0], [-0.1, 0.8, 0.3], [0.0, -0.2, 0.95]], dtype=torch.float64)
    Q = 0.1 * torch.eye(d, dtype=torch.float64)
    H = torch.randn(m, d, generator=g, dtype=torch.float64)
    R = 0.5 * torch.eye(m, dtype=torch.float64)
    m0, P0 = torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64)
    system = LinearSystem(M, Q)
    x = torch.randn(1, d, generator=g, dtype=torch.float64)
    ys = []
    for _ in range(T):
        x = system.add_process_noise(system.step(x), g)
        ys.append((x @ H.T)[0] + 0.7 * torch.randn(m, generator=g, dtype=torch.float64))
    ys = torch.stack(ys)
    kf = kalman_filter(M, Q, H, R, m0, P0, ys)
    ms, ps = rts_smoother(M, kf)
    mean, cov = _posterior_by_least_squares(M, Q, H, R, m0, P0, ys)
    torch.testing.assert_close(ms, mean, rtol=0, atol=1e-10)
    for k in range(T):
        torch.testing.assert_close(
            ps[k], cov[k * d : (k + 1) * d, k * d : (k + 1) * d], atol=1e-10, rtol=0
        )
    # the filter's last analysis is the smoother's last state
    torch.testing.assert_close(kf.mean_a[-1], mean[-1], rtol=0, atol=1e-10)
