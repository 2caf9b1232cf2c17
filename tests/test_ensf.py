"""EnSF on a linear Gaussian analysis (Kalman posterior as the reference) and its mechanics.

Tolerances: errors are Euclidean distances of the analysis mean from the Kalman posterior mean,
averaged over 3 seeds; the prior mean sits 2.0 away from the posterior mean.
"""

import itertools
from typing import get_args

import pytest
import torch

from latentda.errors import ConfigError
from latentda.filters import (
    EnSF,
    GaussianPriorScore,
    LinearSchedule,
    MemberPriorScore,
    MixturePriorScore,
    make_prior_score,
)
from latentda.filters.ensf import PRIOR_SCORES, PriorScore, PriorScoreName
from latentda.observations import Arctan, Identity, LinearMap, Observer, Subset
from latentda.systems.linear import kalman_update

D, SIGMA, SEEDS = 4, 0.5, 3
Y = torch.tensor([1.0, -1.0, 0.5, 2.0], dtype=torch.float64)


def _kalman_mean() -> torch.Tensor:
    eye = torch.eye(D, dtype=torch.float64)
    mean, _ = kalman_update(torch.zeros(D, dtype=torch.float64), eye, Y, eye, SIGMA**2 * eye)
    return mean


def _mean_error(score: PriorScore, n: int, eps_beta: float = 0.0) -> float:
    errs = []
    observer = Observer(Identity(D), SIGMA)
    for seed in range(SEEDS):
        g = torch.Generator().manual_seed(seed)
        prior = torch.randn(n, D, generator=g, dtype=torch.float64)
        ensf = EnSF(steps=100, schedule=LinearSchedule(0.05, eps_beta), prior_score=score)
        post = ensf.analysis(prior, Y, observer, g)
        errs.append(float((post.mean(0) - _kalman_mean()).norm()))
    return sum(errs) / len(errs)


def test_mixture_score_converges_towards_kalman_posterior() -> None:
    prior_error = float(_kalman_mean().norm())
    errors = [_mean_error(MixturePriorScore(), n) for n in (10, 60, 360)]
    assert prior_error == pytest.approx(2.0)
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.2 * prior_error


def test_member_score_moves_mean_towards_posterior() -> None:
    """The per-member score (public-code default) is biased to the prior: with ε_β = 0 and
    moderate noise it hardly moves the mean; ε_β > 0 keeps part of the correction. A known
    property we keep visible rather than hide."""
    prior_error = float(_kalman_mean().norm())
    assert _mean_error(MemberPriorScore(), 100, eps_beta=0.1) < 0.75 * prior_error
    assert _mean_error(MemberPriorScore(), 100, eps_beta=0.0) > 0.9 * prior_error


def test_gaussian_score_is_the_diffused_ensemble_gaussian() -> None:
    """Woodbury form against the dense ``−(α² P + β² I)⁻¹ (z − α m)`` with the sample
    covariance, whether the ensemble spans the space (N > d) or not (N < d)."""
    g = torch.Generator().manual_seed(0)
    for (n, d), beta2 in itertools.product(((20, 6), (5, 12)), (0.3, 1e-3)):
        prior = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.linspace(0.1, 2, d)
        z = torch.randn(n, d, generator=g, dtype=torch.float64)
        alpha = 0.7
        dense = alpha**2 * torch.cov(prior.T) + beta2 * torch.eye(d, dtype=torch.float64)
        expected = -torch.linalg.solve(dense, (z - alpha * prior.mean(0)).T).T
        got = GaussianPriorScore()(z, prior, alpha, beta2)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    with pytest.raises(ConfigError, match="2 members"):
        GaussianPriorScore()(z[:1], prior[:1], alpha, beta2)


def test_gaussian_score_in_float32_with_a_wide_ensemble_and_small_beta() -> None:
    """``α² λ_max/β²`` ≈ 10⁸ (spread 30 over d = 2·10⁴, β² = 0.01): the Gram matrix's null
    vector rounds to a negative eigenvalue in float32, which a Cholesky factor refuses; the
    score stays finite and within float32 round-off of the float64 one. A non-finite
    forecast gives a NaN score (the filters' divergence checks report it)."""
    g = torch.Generator().manual_seed(0)
    prior = 30.0 * torch.randn(20, 20_000, generator=g, dtype=torch.float64)
    z = torch.randn(20, 20_000, generator=g, dtype=torch.float64)
    exact = GaussianPriorScore()(z, prior, 0.99, 0.01)
    single = GaussianPriorScore()(z.float(), prior.float(), 0.99, 0.01)
    assert bool(torch.isfinite(single).all())
    assert float((single.double() - exact).norm() / exact.norm()) < 1e-4
    prior[3, 7] = float("nan")
    assert bool(GaussianPriorScore()(z, prior, 0.99, 0.01).isnan().all())


def test_gaussian_score_moves_correlated_unobserved_components() -> None:
    """Component 1 ≈ 2 × component 0 in the forecast, only component 0 read (σ = 0.5, the
    reading 2 away from the prior mean, N = 200, seeds 0–2). The Gaussian score moves the
    unobserved component with the observed one, by their forecast regression (Kalman:
    2.00–2.01; measured 1.85–1.88), and the observed one by 0.99–1.09 (Kalman 1.59–1.70:
    the damped likelihood keeps it short); the per-member score moves neither (≤ 0.081)."""
    observer = Observer(Subset([0], 3), 0.5)
    y = torch.tensor([2.0], dtype=torch.float64)
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        base = torch.randn(200, 1, generator=g, dtype=torch.float64)
        noise = torch.randn(200, 2, generator=g, dtype=torch.float64)
        prior = torch.cat([base, 2 * base + 0.1 * noise[:, :1], noise[:, 1:]], 1)
        moves = {}
        for name in ("gaussian", "member"):
            gen = torch.Generator().manual_seed(seed)
            post = EnSF(steps=100, prior_score=make_prior_score(name)).analysis(
                prior, y, observer, gen
            )
            moves[name] = post.mean(0) - prior.mean(0)
        gauss, member = moves["gaussian"], moves["member"]
        assert 0.9 < float(gauss[0]) < 1.3
        assert 1.75 < float(gauss[1] / gauss[0]) < 2.1
        assert float(member[:2].abs().max()) < 0.1


def test_prior_scores_by_name() -> None:
    assert get_args(PriorScoreName) == tuple(PRIOR_SCORES)
    assert {type(make_prior_score(n)) for n in PRIOR_SCORES} == {
        MemberPriorScore,
        MixturePriorScore,
        GaussianPriorScore,
    }
    with pytest.raises(ConfigError, match="unknown prior_score 'kernel'.*gaussian"):
        make_prior_score("kernel")


def test_unobserved_components_are_not_corrected(gen: torch.Generator) -> None:
    """With sparse observations the likelihood score is zero on unobserved components, so
    those keep the prior ensemble (member score, ε_β = 0): DESIGN 6.2's failure mode."""
    prior = torch.randn(20, 6, generator=gen, dtype=torch.float64) + 3.0
    observer = Observer(Subset([0, 1], 6), 0.1)
    post = EnSF(steps=100).analysis(prior, torch.tensor([0.0, 0.0]), observer, gen)
    assert float(post[:, 2:].mean(0).sub(prior[:, 2:].mean(0)).abs().max()) < 0.1
    assert float(post[:, :2].mean(0).abs().max()) < float(prior[:, :2].mean(0).abs().min())


def test_likelihood_score_by_autograd_is_exact(gen: torch.Generator) -> None:
    """For arctan observations the score is scale·J_Hᵀ (y − H)/σ² with J = diag(1/(1+x²))."""
    observer = Observer(Arctan(Identity(3)), 0.2)
    z = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    y = torch.tensor([0.1, float("nan"), -0.4], dtype=torch.float64)
    ensf = EnSF(scale=2.0)
    got = ensf.likelihood_score(z, y, observer)
    x = 2.0 * z
    expect = 2.0 * (torch.nan_to_num(y) - torch.atan(x)) / 0.04 / (1 + x**2)
    expect[:, 1] = 0.0
    torch.testing.assert_close(got, expect)


def test_same_seed_same_result_and_missing_only_is_identity() -> None:
    prior = torch.randn(8, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    observer = Observer(Identity(3), 1.0)
    y = torch.tensor([0.5, float("nan"), 1.0], dtype=torch.float64)
    a = EnSF(steps=20).analysis(prior, y, observer, torch.Generator().manual_seed(5))
    b = EnSF(steps=20).analysis(prior, y, observer, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    nothing = torch.full((3,), float("nan"), dtype=torch.float64)
    assert torch.equal(EnSF().analysis(prior, nothing, observer, torch.Generator()), prior)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_affine_steps_equal_the_general_steps(
    dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-member score with ``H = I`` runs as one affine map per step; the general loop
    (``H`` as an identity :class:`LinearMap`) takes the same draws and ends at the same
    analysis up to rounding (float64: 1e-12; float32: 1e-5 relative), missing readings
    included, for a scale near the stability limit (c = 7, K = 100)."""
    g = torch.Generator().manual_seed(3)
    d = 7
    prior = (torch.randn(12, d, generator=g, dtype=torch.float64) * 2.0 + 1.0).to(dtype)
    y = torch.randn(d, generator=g, dtype=torch.float64).to(dtype)
    y[2] = float("nan")
    noise = torch.linspace(1.0, 2.0, d, dtype=torch.float64)  # stable at c = 7 (growth ≤ 2)
    ensf = EnSF(steps=100, schedule=LinearSchedule(0.01, 0.0), scale=7.0, inflation=1.1)
    assert ensf.growth(1.0) < 2.0
    with monkeypatch.context() as m:  # H = I must take the affine path
        m.setattr(EnSF, "_steps", lambda *a: pytest.fail("general steps for H = I"))
        fast = ensf.analysis(
            prior, y, Observer(Identity(d), noise), torch.Generator().manual_seed(9)
        )
    general = Observer(LinearMap(torch.eye(d, dtype=torch.float64)), noise)
    slow = ensf.analysis(prior, y, general, torch.Generator().manual_seed(9))
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(fast, slow, rtol=tol, atol=tol)
    assert not torch.equal(fast[:, 2], prior[:, 2])  # the prior score still acts there


def test_memory_is_linear_in_dimension() -> None:
    """The mixture score never forms an (N, N, d) tensor: it runs at d = 2·10^5, N = 20."""
    g = torch.Generator().manual_seed(0)
    d = 200_000
    prior = torch.randn(20, d, generator=g)
    observer = Observer(Identity(d), 1.0)
    y = torch.zeros(d)
    post = EnSF(steps=3, prior_score=MixturePriorScore()).analysis(prior, y, observer, g)
    assert post.shape == (20, d) and torch.isfinite(post).all()
