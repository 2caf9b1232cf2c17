"""Exact oracles: ETKF = Kalman filter on a linear Gaussian system (N > d), LETKF with an
infinite radius = global ETKF, and the stochastic EnKF's mean update = Kalman's."""

import math

import pytest
import torch

from latentda.filters import ETKF, LETKF, GaspariCohn, PeriodicDistance, StochasticEnKF
from latentda.filters.ensemble import ensemble_cov, gaussian_ensemble_exact, rotate
from latentda.observations import Identity, LinearMap, Observer, Subset
from latentda.systems import LinearSystem, kalman_filter
from oracles import linear_problem

pytestmark = pytest.mark.usefixtures("float64_default")  # round-off oracles


@pytest.mark.parametrize("rot", [False, True])
def test_etkf_equals_kalman_filter(rot: bool) -> None:
    d, m, n, cycles = 6, 4, 12, 8
    g, M, H, std, mean0, cov0 = linear_problem(d, m)
    system = LinearSystem(M)
    observer = Observer(LinearMap(H), std)
    truth = torch.randn(d, generator=g)
    ys = []
    for _ in range(cycles):
        truth = system.step(truth[None])[0]
        ys.append(observer.observe(truth, g))
    ys = torch.stack(ys)
    kf = kalman_filter(M, None, H, torch.diag(std**2), mean0, cov0, ys)

    E = gaussian_ensemble_exact(mean0, cov0, n, g)
    etkf = ETKF(rotate=rot)
    for k in range(cycles):
        E = system.step(E)
        torch.testing.assert_close(E.mean(0), kf.mean_f[k], rtol=0, atol=1e-10)
        E = etkf.analysis(E, ys[k], observer, g)
        torch.testing.assert_close(E.mean(0), kf.mean_a[k], rtol=0, atol=1e-10)
        torch.testing.assert_close(ensemble_cov(E), kf.cov_a[k], rtol=0, atol=1e-10)


def test_etkf_missing_readings_use_only_present_values(gen: torch.Generator) -> None:
    d, n = 5, 10
    E = gaussian_ensemble_exact(torch.zeros(d), torch.eye(d), n, gen)
    y = torch.tensor([0.5, float("nan"), -1.0, float("nan"), 2.0])
    full = Observer(Identity(d), 0.5)
    sub = Observer(Subset([0, 2, 4], d), 0.5)
    a = ETKF().analysis(E, y, full, gen)
    b = ETKF().analysis(E, y[[0, 2, 4]], sub, gen)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    # no reading at all: the analysis is the forecast
    nothing = torch.full((d,), float("nan"))
    assert torch.equal(ETKF().analysis(E, nothing, full, gen), E)


def test_letkf_infinite_radius_equals_global_etkf(gen: torch.Generator) -> None:
    d, n = 40, 20
    E = 8 + 3 * torch.randn(n, d, generator=gen)
    observer = Observer(Subset(list(range(0, d, 2)), d), 1.0)
    y = observer.observe(torch.randn(d, generator=gen), gen)
    coords = torch.arange(d, dtype=torch.float64)[:, None]
    for radius in (math.inf, 1e9):
        letkf = LETKF(
            coords=coords,
            distance=PeriodicDistance((float(d),)),
            taper=GaspariCohn(radius),
            batch_points=7,
        )
        a = letkf.analysis(E, y, observer, gen)
        b = ETKF().analysis(E, y, observer, gen)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)


def test_letkf_locality(gen: torch.Generator) -> None:
    """A single reading only changes the points inside the taper support."""
    d, n = 40, 10
    E = torch.randn(n, d, generator=gen)
    observer = Observer(Subset([10], d), 1.0)
    coords = torch.arange(d, dtype=torch.float64)[:, None]
    taper = GaspariCohn(2.0)  # support: |δ| < 2·1.82·2 = 7.28
    letkf = LETKF(coords=coords, distance=PeriodicDistance((float(d),)), taper=taper)
    a = letkf.analysis(E, torch.tensor([3.0]), observer, gen)
    changed = (a - E).abs().amax(0) > 1e-12
    expect = torch.zeros(d, dtype=torch.bool)
    expect[3:18] = True  # 10 ± 7
    assert torch.equal(changed, expect)


def test_stochastic_enkf_mean_matches_kalman_gain(gen: torch.Generator) -> None:
    """With centred perturbations the EnKF mean update is the Kalman update with the
    ensemble covariance."""
    d, n = 4, 30
    E = gaussian_ensemble_exact(torch.zeros(d), torch.eye(d), n, gen)
    H = torch.randn(3, d, generator=gen)
    R = torch.diag(torch.tensor([0.5, 1.0, 2.0]) ** 2)
    observer = Observer(LinearMap(H), torch.sqrt(torch.diag(R)))
    y = torch.tensor([1.0, -0.5, 0.3])
    Ea = StochasticEnKF().analysis(E, y, observer, gen)
    P = ensemble_cov(E)
    K = P @ H.T @ torch.linalg.inv(H @ P @ H.T + R)
    torch.testing.assert_close(Ea.mean(0), E.mean(0) + K @ (y - H @ E.mean(0)), atol=1e-10, rtol=0)


def test_rotation_preserves_mean_and_covariance(gen: torch.Generator) -> None:
    E = torch.randn(15, 6, generator=gen)
    R = rotate(E, gen)
    torch.testing.assert_close(R.mean(0), E.mean(0), atol=1e-12, rtol=0)
    torch.testing.assert_close(ensemble_cov(R), ensemble_cov(E), atol=1e-12, rtol=0)
    assert not torch.allclose(R, E)


@pytest.mark.parametrize(("n", "m"), [(10, 4), (10, 25), (6, 6)])
def test_etkf_transform_both_eigen_spaces_match_dense_formula(n: int, m: int) -> None:
    """w = C⁻¹ G √ρ dy and T² = (N−1) C⁻¹ with C = G Gᵀ + (N−1) I, T symmetric, T 1 = 1,
    whichever of the N- or m-space eigen-problems is used."""
    from latentda.filters import etkf_transform

    g = torch.Generator().manual_seed(n * 100 + m)
    Ys = torch.randn(3, n, m, generator=g)
    Ys = Ys - Ys.mean(-2, keepdim=True)
    dy, rho = torch.randn(3, m, generator=g), torch.rand(3, m, generator=g)
    w, T = etkf_transform(Ys, dy, rho)
    G = Ys * rho.sqrt().unsqueeze(-2)
    C = G @ G.transpose(-1, -2) + (n - 1) * torch.eye(n)
    w_ref = torch.linalg.solve(C, G @ (dy * rho.sqrt()).unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(w, w_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(T @ T, (n - 1) * torch.linalg.inv(C), rtol=0, atol=1e-12)
    torch.testing.assert_close(T, T.transpose(-1, -2), rtol=0, atol=1e-14)
    torch.testing.assert_close(T.sum(-1), torch.ones(3, n), rtol=0, atol=1e-12)
