"""The latent filters' analyses of a direct observation ``φ = κ + ε``: the Kalman (ETKF)
strategy equals the dense Kalman update of the ensemble's mean and covariance to round-off,
missing entries included; the score (EnSF) strategy's pull towards ``φ`` does not depend on
the forecast spread, the Kalman one does (the property the ``ldetkf`` ablation isolates)."""

import pytest
import torch

from latentda.errors import ConfigError
from latentda.filters.ensf import GaussianPriorScore
from latentda.filters.etkf import ETKF
from latentda.filters.latent_analysis import KalmanAnalysis, ScoreAnalysis, ldensf_ensf


def _kalman(E: torch.Tensor, phi: torch.Tensor, sigma: torch.Tensor):  # noqa: ANN202
    """Dense Kalman analysis mean and covariance from the ensemble's sample moments."""
    present = ~torch.isnan(phi)
    mu = E.mean(0)
    P = torch.cov(E.T)
    H = torch.eye(len(mu), dtype=E.dtype)[present]
    R = torch.diag(sigma[present] ** 2)
    K = P @ H.T @ torch.linalg.inv(H @ P @ H.T + R)
    return mu + K @ (phi[present] - H @ mu), (torch.eye(len(mu), dtype=E.dtype) - K @ H) @ P


@pytest.mark.parametrize("inflation", [1.0, 1.1])
def test_kalman_analysis_is_the_kalman_update(inflation: float) -> None:
    g = torch.Generator().manual_seed(0)
    n, d = 30, 5
    E = torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.randn(
        d, d, generator=g, dtype=torch.float64
    )
    sigma = torch.tensor([0.1, 1.0, 3.0, 0.5, 0.02], dtype=torch.float64)
    phi = torch.randn(d, generator=g, dtype=torch.float64)
    phi[2] = float("nan")  # a missing entry
    Ea = KalmanAnalysis(ETKF(inflation=inflation))(E, phi, sigma, g)
    mean, cov = _kalman(E, phi, sigma)
    torch.testing.assert_close(Ea.mean(0), mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.cov(Ea.T), inflation**2 * cov, rtol=1e-10, atol=1e-12)


def test_kalman_analysis_without_readings_returns_the_forecast() -> None:
    E = torch.randn(8, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    phi = torch.full((3,), float("nan"), dtype=torch.float64)
    assert KalmanAnalysis()(E, phi, torch.ones(3, dtype=torch.float64), torch.Generator()) is E
    with pytest.raises(ConfigError, match="inflation"):
        KalmanAnalysis(ETKF(inflation=0.0))


@pytest.mark.parametrize("spread", [0.01, 1.0])
def test_score_gain_ignores_the_forecast_spread_kalman_gain_does_not(spread: float) -> None:
    """A forecast at 0 of std ``spread`` (in noise units), ``φ = 1``: the Kalman mean moves
    by ``P/(P + 1)`` (10⁻⁴, then 0.5); the EnSF members (per-member score, ``c = 7``,
    ``K = 100``) move by about 0.25 at either spread (seeds 0–2: 0.23–0.27 and 0.21–0.25;
    ``c²/(c² + K) = 0.33`` is its order) and come out about ``c/√K`` wide (0.75–0.81 from
    a forecast 0.01 wide). 200 members × 10 entries average the kernel noise out."""
    g = torch.Generator().manual_seed(0)
    n, d = 200, 10
    E = spread * torch.randn(n, d, generator=g, dtype=torch.float64)
    phi, sigma = torch.ones(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64)
    kalman = KalmanAnalysis()(E, phi, sigma, g) - E
    score = ScoreAnalysis(ldensf_ensf(7.0))(E, phi, sigma, g)
    P = float(torch.var(E, dim=0).mean())
    assert float(kalman.mean()) == pytest.approx(P / (P + 1), rel=0.05, abs=1e-5)
    assert 0.15 < float((score - E).mean()) < 0.35
    assert float(score.std(0).mean()) > 0.6


@pytest.mark.parametrize(("spread", "low", "high"), [(0.01, 0.0, 0.03), (1.0, 0.45, 0.6)])
def test_gaussian_score_gain_follows_the_forecast_spread(
    spread: float, low: float, high: float
) -> None:
    """The ``ldensf_gaussian`` ablation's analysis, same case as above at ``c = 1``: the
    members move by 0.009–0.013 and 0.51–0.54 (seeds 0–2) where the Kalman gain
    ``P/(P + 1)`` is 10⁻⁴ and 0.5 (the last step's diffusion, ``β² = 1/K = 0.01``, floors the
    gain at about 0.01), and a forecast 0.01 wide comes out about ``c/√K`` = 0.1 wide
    (0.097–0.103; the last explicit step's noise), not 0.75 as with the per-member score."""
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        E = spread * torch.randn(200, 10, generator=g, dtype=torch.float64)
        phi, sigma = torch.ones(10, dtype=torch.float64), torch.ones(10, dtype=torch.float64)
        analysis = ScoreAnalysis(ldensf_ensf(1.0, prior_score=GaussianPriorScore()), centred=True)
        out = analysis(E, phi, sigma, g)
        assert low < float((out - E).mean()) < high
        if spread < 0.1:
            assert float(out.std(0).mean()) < 0.12


def test_centred_score_analysis_is_translation_equivariant() -> None:
    """Centred, shifting the forecast and ``φ`` by ``v`` shifts the analysis by ``v`` (the same
    draws); uncentred it does not: the sampler's forward kernel contracts towards 0."""
    g = torch.Generator().manual_seed(0)
    E = 0.3 * torch.randn(20, 6, generator=g, dtype=torch.float64)
    phi = torch.tensor([0.5, float("nan"), -0.2, 0.1, float("nan"), 0.3], dtype=torch.float64)
    sigma = torch.full((6,), 0.5, dtype=torch.float64)
    v = torch.linspace(-40.0, 40.0, 6, dtype=torch.float64)
    for centred, equal in ((True, True), (False, False)):
        analysis = ScoreAnalysis(ldensf_ensf(1.0, prior_score=GaussianPriorScore()), centred)
        a = analysis(E, phi, sigma, torch.Generator().manual_seed(1))
        b = analysis(E + v, phi + v, sigma, torch.Generator().manual_seed(1))
        assert torch.allclose(b - v, a, atol=1e-9) is equal
