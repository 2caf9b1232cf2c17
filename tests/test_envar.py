"""4DEnVar (DESIGN 6.5) against exact oracles.

- ``gauss_newton_step`` equals the dense formulas ``Hess = I + ΣĜᵀĜ``,
  ``Δw = Hess⁻¹(ΣĜᵀδ − w)``, ``T² = Hess⁻¹``, ``T·T⁻¹ = I``;
- ``window_blocks`` lists DAPPER's iEnKS cycling (``shift = 1``) and disjoint windows;
- on the linear Gaussian system with ``N > d``, one window's analysis at the window start has
  the mean and covariance of the Rauch–Tung–Striebel smoother to 1e-6, reached by the first
  Gauss–Newton step (the second step is round-off);
- through the twin loop, with irregular observation times and 30 % missing readings and for
  every shift, each recorded analysis and forecast mean/std equals the Kalman smoother's
  (analysis at ``c`` = smoothed given the readings up to its window's end);
- the innovation-based inflation recovers a known missing spread, and the adaptive analysis
  is the plain analysis of the background inflated by it;
- a window without readings returns the background; same seed, same numbers; bad
  configuration and bad input give one-line errors; ``latentda run`` writes its files.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from latentda.errors import ConfigError, DataError
from latentda.experiments import twin_config
from latentda.experiments.initial import InitialEnsemble
from latentda.experiments.twin import TwinExperiment
from latentda.filters import FourDEnVar, gauss_newton_step
from latentda.filters.ensemble import ensemble_cov, gaussian_ensemble_exact
from latentda.filters.envar import WindowBlock, innovation_inflation, window_blocks
from latentda.observations import LinearMap, Observer, TimesSchedule
from latentda.systems import LinearSystem, kalman_filter
from latentda.systems.base import System, integrate
from latentda.systems.linear import kalman_update, rts_smoother
from oracles import linear_problem

ROOT = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).parent / "latentda"
CMD = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "latentda"]


pytestmark = pytest.mark.usefixtures("float64_default")  # round-off oracles


def _smoother_oracle(M, H, std, mean0, cov0, ys, steps):  # noqa: ANN001, ANN202
    """Exact Kalman filter + RTS smoother over observation times with model steps ``steps``
    ``(C,)`` (irregular) and NaN readings left out; moments at times 0..C (0 = the prior)."""
    ma, pa, mf, pf, F = [mean0], [cov0], [None], [None], [None]
    prev = 0
    for y, s in zip(ys, steps, strict=True):
        Fc = torch.linalg.matrix_power(M, int(s) - prev)
        prev = int(s)
        m, P = Fc @ ma[-1], Fc @ pa[-1] @ Fc.T
        mf.append(m), pf.append(P), F.append(Fc)
        ok = torch.isfinite(y)
        if ok.any():
            m, P = kalman_update(m, P, y[ok], H[ok], torch.diag(std[ok] ** 2))
        ma.append(m), pa.append(P)
    ms, ps = [ma[-1]], [pa[-1]]
    for c in range(len(ys) - 1, -1, -1):
        G = torch.linalg.solve(pf[c + 1], F[c + 1] @ pa[c]).T
        ms.insert(0, ma[c] + G @ (ms[0] - mf[c + 1]))
        ps.insert(0, pa[c] + G @ (ps[0] - pf[c + 1]) @ G.T)
    return torch.stack(ms), torch.stack(ps)


def _propagator(system: System, steps: list[int]):  # noqa: ANN202
    """States at the given cumulative model steps from the window start."""

    def propagate(X: torch.Tensor) -> list[torch.Tensor]:
        out, prev = [], 0
        for s in steps:
            X = integrate(system, X, torch.empty(X.shape[0], 0), s - prev)
            out.append(X)
            prev = s
        return out

    return propagate


def test_gauss_newton_step_matches_dense_formulas() -> None:
    g = torch.Generator().manual_seed(7)
    n = 6
    w = torch.randn(n, generator=g)
    G = [torch.randn(4, n, generator=g), torch.randn(9, n, generator=g)]
    d = [torch.randn(4, generator=g), torch.randn(9, generator=g)]
    gn = gauss_newton_step(w, d, G)
    hess = torch.eye(n) + G[0].T @ G[0] + G[1].T @ G[1]
    grad_misfit = G[0].T @ d[0] + G[1].T @ d[1]
    torch.testing.assert_close(gn.hessian, hess, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        gn.step, torch.linalg.solve(hess, grad_misfit - w), rtol=0, atol=1e-12
    )
    torch.testing.assert_close(gn.w, w + gn.step, rtol=0, atol=0)
    torch.testing.assert_close(
        gn.transform @ gn.transform, torch.linalg.inv(hess), rtol=0, atol=1e-12
    )
    torch.testing.assert_close(gn.transform @ gn.transform_inv, torch.eye(n), rtol=0, atol=1e-12)
    torch.testing.assert_close(gn.transform, gn.transform.T, rtol=0, atol=1e-14)
    expected_cost = 0.5 * (w @ w + d[0] @ d[0] + d[1] @ d[1])
    torch.testing.assert_close(gn.cost, expected_cost, rtol=0, atol=1e-12)
    # stacked blocks give the same step: time blocks only sum
    stacked = gauss_newton_step(w, [torch.cat(d)], [torch.cat(G)])
    torch.testing.assert_close(stacked.w, gn.w, rtol=0, atol=1e-12)
    # no reading: Hess = I and the step returns to the background, w = 0
    empty = gauss_newton_step(w, [], [])
    torch.testing.assert_close(empty.w, torch.zeros(n), rtol=0, atol=0)


def test_window_blocks() -> None:
    def spans(blocks: list[WindowBlock]) -> list[tuple[int, int, int]]:
        return [(b.start, b.first, b.end) for b in blocks]

    # DAPPER iEnKS: one new time per cycle, control at max(c - L, 0)
    assert spans(window_blocks(6, 3, 1)) == [
        (0, 1, 1), (0, 2, 2), (0, 3, 3), (1, 4, 4), (2, 5, 5), (3, 6, 6),
    ]  # fmt: skip
    # disjoint windows; the short last one keeps L times by starting inside the previous one
    assert spans(window_blocks(7, 3, 3)) == [(0, 1, 3), (3, 4, 6), (4, 7, 7)]
    assert spans(window_blocks(7, 3, 2)) == [(0, 1, 2), (1, 3, 4), (3, 5, 6), (4, 7, 7)]
    assert list(window_blocks(7, 3, 2)[1].new) == [3, 4]
    with pytest.raises(ConfigError, match="shift must lie in"):
        window_blocks(7, 3, 4)


def test_one_window_equals_rts_smoother_in_one_gauss_newton_step() -> None:
    """N > d, linear model and observer: the window-start analysis is the RTS smoother's
    estimate of the initial state given the window's L readings."""
    d, m, n, L, gap = 5, 3, 12, 4, 2
    g, M, H, std, mean0, cov0 = linear_problem(d, m)
    system, observer = LinearSystem(M), Observer(LinearMap(H), std)
    truth = torch.randn(1, d, generator=g)
    ys = []
    for _ in range(L):
        truth = integrate(system, truth, torch.empty(1, 0), gap)
        ys.append(observer.observe(truth[0], g))
    ys = torch.stack(ys)
    kf = kalman_filter(M, None, H, torch.diag(std**2), mean0, cov0, ys, steps_per_obs=gap)
    ms, ps = rts_smoother(M, kf, steps_per_obs=gap)
    # one more RTS step back from the first observation time to the window start
    F = torch.linalg.matrix_power(M, gap)
    G0 = torch.linalg.solve(kf.cov_f[0], F @ cov0).T
    mean_s = mean0 + G0 @ (ms[0] - kf.mean_f[0])
    cov_s = cov0 + G0 @ (ps[0] - kf.cov_f[0]) @ G0.T

    E0 = gaussian_ensemble_exact(mean0, cov0, n, g)
    propagate = _propagator(system, [gap * (k + 1) for k in range(L)])
    one = FourDEnVar(window=L, iterations=1).analyse(E0, propagate, ys, observer, g)
    torch.testing.assert_close(one.ensemble.mean(0), mean_s, rtol=0, atol=1e-6)
    torch.testing.assert_close(ensemble_cov(one.ensemble), cov_s, rtol=0, atol=1e-6)
    # the background forecast at each time is the Kalman forecast of the prior
    torch.testing.assert_close(one.background[0].mean(0), kf.mean_f[0], rtol=0, atol=1e-10)

    many = FourDEnVar(window=L, iterations=10, tolerance=1e-8).analyse(
        E0, propagate, ys, observer, g
    )
    assert many.iterations == 2 and many.step_norms[0] > 0.1 and many.step_norms[1] < 1e-10
    # J at the background, then at the minimum w*: the cost is quadratic, so it fell by
    # ½ w*ᵀ Hess w*.
    assert len(many.costs) == 2
    gain = 0.5 * float(many.w @ many.hessian @ many.w)
    assert many.costs[0] - many.costs[1] == pytest.approx(gain, rel=1e-8)
    torch.testing.assert_close(many.ensemble, one.ensemble, rtol=0, atol=1e-10)
    # and the final ensemble is the filter's at the window end once forecast there
    end = propagate(many.ensemble)[-1]
    torch.testing.assert_close(end.mean(0), kf.mean_a[-1], rtol=0, atol=1e-10)
    torch.testing.assert_close(ensemble_cov(end), kf.cov_a[-1], rtol=0, atol=1e-10)


def test_one_observer_per_time_is_the_exact_posterior() -> None:
    """Moving sensors: a different linear observer ``H_k`` at each of the window's times.
    With ``N > d`` one Gauss–Newton step gives the exact Gaussian posterior of the window
    start, ``P_a⁻¹ = P_0⁻¹ + Σ_k (H_k F_k)ᵀ R⁻¹ H_k F_k``,
    ``x_a = P_a (P_0⁻¹ x_0 + Σ_k (H_k F_k)ᵀ R⁻¹ y_k)``, and the same observer at every time
    equals passing it once, bit for bit."""
    d, m, n, L, gap = 5, 3, 12, 3, 2
    g, M, H, std, mean0, cov0 = linear_problem(d, m)
    Hs = [H] + [torch.randn(m, d, generator=g) for _ in range(L - 1)]
    observers = [Observer(LinearMap(Hk), std) for Hk in Hs]
    ys = torch.randn(L, m, generator=g)
    E0 = gaussian_ensemble_exact(mean0, cov0, n, g)
    propagate = _propagator(LinearSystem(M), [gap * (k + 1) for k in range(L)])
    one = FourDEnVar(window=L, iterations=1).analyse(E0, propagate, ys, observers, g)
    precision, rhs = torch.linalg.inv(cov0), torch.linalg.solve(cov0, mean0)
    r_inv = torch.diag(std**-2)
    for k, Hk in enumerate(Hs):
        G = Hk @ torch.linalg.matrix_power(M, gap * (k + 1))
        precision = precision + G.T @ r_inv @ G
        rhs = rhs + G.T @ r_inv @ ys[k]
    cov_a = torch.linalg.inv(precision)
    torch.testing.assert_close(one.ensemble.mean(0), cov_a @ rhs, rtol=0, atol=1e-8)
    torch.testing.assert_close(ensemble_cov(one.ensemble), cov_a, rtol=0, atol=1e-8)
    same = FourDEnVar(window=L, iterations=3).analyse(E0, propagate, ys, [observers[0]] * L, g)
    once = FourDEnVar(window=L, iterations=3).analyse(E0, propagate, ys, observers[0], g)
    assert torch.equal(same.ensemble, once.ensemble)
    with pytest.raises(DataError, match="2 observers for 3 observation times"):
        FourDEnVar(window=L).analyse(E0, propagate, ys, observers[:2], g)


@pytest.mark.parametrize("lam0", [1.0, 3.0])
def test_innovation_inflation_recovers_the_missing_spread(lam0: float) -> None:
    """Innovations drawn as from a background whose true anomalies are ``λ₀`` times the
    ensemble's, ``δ ~ N(0, I + λ₀² G Gᵀ)``, m = 4000, N = 10: the estimate is ``λ₀`` to 3 %
    (a spread-consistent background, ``λ₀ = 1``, gives at most 1.03; it is floored at 1)."""
    g = torch.Generator().manual_seed(3)
    m, n = 4000, 10
    G = 0.1 * torch.randn(m, n, generator=g)
    delta = torch.randn(m, generator=g) + lam0 * G @ torch.randn(n, generator=g)
    lam = innovation_inflation(delta, G)
    assert lam >= 1.0 and abs(lam - lam0) < 0.03 * lam0, lam
    assert innovation_inflation(torch.zeros(m), G) == 1.0  # no excess: no inflation


def test_adaptive_inflation_is_the_analysis_of_the_inflated_background() -> None:
    """Linear model and observer, a background 4x too narrow (its mean off by the prior's
    spread): the adaptive analysis equals the plain analysis of the background whose
    anomalies are scaled by the estimate computed by hand from its first-iterate
    innovations, to round-off, and the estimate is well above 1."""
    d, m, n, L, gap = 5, 3, 12, 3, 2
    g, M, H, std, mean0, cov0 = linear_problem(d, m)
    observer = Observer(LinearMap(H), std)
    E0 = gaussian_ensemble_exact(mean0, cov0 / 16, n, g)
    truth = (mean0 + torch.linalg.cholesky(cov0) @ torch.randn(d, generator=g))[None]
    propagate = _propagator(LinearSystem(M), [gap * (k + 1) for k in range(L)])
    ys = torch.stack([observer.observe(x[0], g) for x in propagate(truth)])
    Y = [observer(x) for x in propagate(E0)]
    delta = torch.cat([(y - Yk.mean(0)) / std for y, Yk in zip(ys, Y, strict=True)])
    G = torch.cat([((Yk - Yk.mean(0)) / ((n - 1) ** 0.5 * std)).T for Yk in Y])
    lam = innovation_inflation(delta, G)
    assert lam > 2.0
    adaptive = FourDEnVar(window=L, iterations=3, adaptive_inflation=True)
    plain = FourDEnVar(window=L, iterations=3)
    ours = adaptive.analyse(E0, propagate, ys, observer, g)
    wide = plain.analyse(E0.mean(0) + lam * (E0 - E0.mean(0)), propagate, ys, observer, g)
    torch.testing.assert_close(ours.ensemble, wide.ensemble, rtol=0, atol=1e-10)


@pytest.mark.parametrize("adaptive", [False, True])
def test_member_start_changes_the_path_not_the_linear_minimum(adaptive: bool) -> None:
    """Linear window, noise-free readings made by member 2 (with ``adaptive``: by the point
    three times as far out along its anomaly, so the background is too narrow for them):
    the first iterate jumps onto that member (a step of
    ``√(N−1)/λ`` in ``w``, which lands on the run member when the anomalies were inflated
    by ``λ``), and the iterations end at the same minimum as from the mean, to round-off
    (the cost is quadratic: its minimiser and Hessian do not depend on the start)."""
    d, m, n, L, gap = 5, 3, 12, 3, 2
    g, M, H, std, mean0, cov0 = linear_problem(d, m)
    observer = Observer(LinearMap(H), std)
    E0 = gaussian_ensemble_exact(mean0, cov0, n, g)
    source = E0[2] + (2.0 if adaptive else 0.0) * (E0[2] - E0.mean(0))
    propagate = _propagator(LinearSystem(M), [gap * (k + 1) for k in range(L)])
    ys = torch.stack([observer(x)[0] for x in propagate(source[None])])
    knobs = {"window": L, "iterations": 10, "tolerance": 1e-9, "adaptive_inflation": adaptive}
    ours = FourDEnVar(**knobs, member_starts=True).analyse(E0, propagate, ys, observer, g)
    plain = FourDEnVar(**knobs).analyse(E0, propagate, ys, observer, g)
    lam = 1.0
    if adaptive:
        Y = [observer(x) for x in propagate(E0)]
        delta = torch.cat([(y - Yk.mean(0)) / std for y, Yk in zip(ys, Y, strict=True)])
        G = torch.cat([((Yk - Yk.mean(0)) / ((n - 1) ** 0.5 * std)).T for Yk in Y])
        lam = innovation_inflation(delta, G)
        assert lam > 1.2, lam
    assert ours.step_norms[0] == pytest.approx((n - 1) ** 0.5 / lam, rel=1e-12)
    assert plain.step_norms[0] != pytest.approx(ours.step_norms[0], rel=1e-3)
    torch.testing.assert_close(ours.ensemble, plain.ensemble, rtol=0, atol=1e-8)
    torch.testing.assert_close(ours.w, plain.w, rtol=0, atol=1e-8)


def test_member_start_skips_the_mean_without_readings() -> None:
    """A window with no present reading returns the background and runs the ensemble once,
    without the mean's extra run that only the member search needs."""
    d, m, n, L = 5, 3, 12, 3
    g, M, H, std, mean0, cov0 = linear_problem(d, m)
    observer = Observer(LinearMap(H), std)
    E0 = gaussian_ensemble_exact(mean0, cov0, n, g)
    inner = _propagator(LinearSystem(M), [k + 1 for k in range(L)])
    batches: list[int] = []

    def propagate(X: torch.Tensor) -> list[torch.Tensor]:
        batches.append(X.shape[0])
        return inner(X)

    ys = torch.full((L, m), float("nan"), dtype=torch.float64)
    out = FourDEnVar(window=L, member_starts=True).analyse(E0, propagate, ys, observer, g)
    assert batches == [n]
    torch.testing.assert_close(out.ensemble, E0, rtol=0, atol=0)
    ys[1, 0] = 0.0  # one reading: the search runs the mean with the members
    batches.clear()
    FourDEnVar(window=L, member_starts=True).analyse(E0, propagate, ys, observer, g)
    assert batches[0] == n + 1


class _ExactGaussian(InitialEnsemble):
    def __init__(self, mean: torch.Tensor, cov: torch.Tensor) -> None:
        self.mean, self.cov = mean, cov

    def sample(self, truth, n, system, gen):  # noqa: ANN001, ANN201
        return gaussian_ensemble_exact(self.mean, self.cov, n, gen)


@pytest.mark.parametrize("shift", [1, 2, 3])
def test_twin_cycles_equal_kalman_smoother_irregular_times_missing_readings(shift: int) -> None:
    d, m, n, L = 5, 3, 12, 3
    _, M, H, std, mean0, cov0 = linear_problem(d, m, seed=1)
    steps = (1, 3, 4, 7, 8, 10, 13, 14)
    experiment = TwinExperiment(
        system=LinearSystem(M),
        observer=Observer(LinearMap(H), std),
        filter=FourDEnVar(window=L, shift=shift, iterations=3),
        ensemble_size=n,
        cycles=len(steps),
        schedule=TimesSchedule(steps),
        initial=_ExactGaussian(mean0, cov0),
        seed=5,
        missing=0.3,
        spinup=0,
    )
    data = experiment.make_data()
    assert 0 < int(torch.isnan(data.obs).sum()) < data.obs.numel()
    result = experiment.run(data)
    step_of = (0, *steps)
    prev_end = 0
    for block in experiment.filter.blocks(len(steps)):
        ms, ps = _smoother_oracle(M, H, std, mean0, cov0, data.obs[: block.end], steps[: block.end])
        bs, _ = _smoother_oracle(M, H, std, mean0, cov0, data.obs[:prev_end], steps[:prev_end])
        for c in block.new:
            torch.testing.assert_close(result.mean_a[c - 1], ms[c], rtol=0, atol=1e-6)
            torch.testing.assert_close(
                result.std_a[c - 1], ps[c].diagonal().sqrt(), rtol=0, atol=1e-6
            )
            F = torch.linalg.matrix_power(M, step_of[c] - step_of[block.start])
            torch.testing.assert_close(result.mean_f[c - 1], F @ bs[block.start], rtol=0, atol=1e-6)
        prev_end = block.end
    assert result.scores["gn_iterations"].shape == (len(steps),)


def test_window_without_readings_returns_background(gen: torch.Generator) -> None:
    _, M, H, std, mean0, cov0 = linear_problem(5, 3)
    E0 = gaussian_ensemble_exact(mean0, cov0, 8, gen)
    observer = Observer(LinearMap(H), std)
    ys = torch.full((2, 3), float("nan"))
    res = FourDEnVar(window=2, inflation=1.5).analyse(
        E0, _propagator(LinearSystem(M), [1, 2]), ys, observer, gen
    )
    assert torch.equal(res.ensemble, E0) and res.iterations == 0
    with pytest.raises(DataError, match=r"expected \(K, 3\)"):
        FourDEnVar(window=2).analyse(
            E0, _propagator(LinearSystem(M), [1]), ys[:, :2], observer, gen
        )


L96 = {
    "system": {"name": "lorenz96", "dim": 20},
    "observations": {"operator": "identity", "noise_std": 1.0, "every": 4},
    "method": {"name": "4denvar", "ensemble_size": 10, "window": 3, "shift": 1, "inflation": 1.05},
    "cycles": 25,
    "burn_in": 5,
    "seed": 2,
}


def test_same_seed_same_result_with_rotation() -> None:
    cfg = twin_config(L96, ["method.rotate=true", "observations.missing=0.2"])
    a, b = cfg.build().run(), cfg.build().run()
    for key, v in a.scores.items():
        assert torch.equal(v, b.scores[key]), key
    assert torch.equal(a.mean_a, b.mean_a) and torch.equal(a.std_a, b.std_a)
    assert a.time_means()["rmse_a"] < a.time_means()["rmse_f"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method.windw=3", "unknown key 'windw'; allowed: ensemble_size, inflation, iterations"),
        ("method.window=0", "config.method.window must be > 0, got 0"),
        ("method.shift=4", "config.method.shift must lie in [1, window=3], got 4"),
        ("method.shift=0", "config.method.shift must lie in [1, window=3], got 0"),
        ("method.iterations=0", "config.method.iterations must be > 0, got 0"),
        ("method.tolerance=-1", "config.method.tolerance must be > 0"),
        ("method.inflation=0", "config.method.inflation must be finite and > 0"),
        ("method.ensemble_size=1", "config.method.ensemble_size must be >= 2"),
        ("method.window=two", "expected an integer"),
    ],
)
def test_bad_config_one_line_error(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        twin_config(L96, [override])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_run_writes_files(tmp_path: Path) -> None:
    """The example through the real entry point, shortened by overrides (bad keys reach the
    same exit-2 path as every other ConfigError, covered by test_cli)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    example = str(ROOT / "examples" / "l96_4denvar.yaml")
    out = tmp_path / "out"
    short = ["--set", "cycles=30", "--set", "burn_in=10", "--no-progress"]
    res = subprocess.run(
        [*CMD, "run", example, "--out", str(out), *short],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["analysis.nc", "metrics.json"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "4denvar" and metrics["config"]["method"]["window"] == 4
    assert 0 < metrics["rmse_a"] < metrics["rmse_f"] < 1.0
