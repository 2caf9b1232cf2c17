"""Observation operators and verification metrics against brute-force definitions."""

import pytest
import torch

from latentda import metrics
from latentda.errors import ConfigError
from latentda.observations import (
    Arctan,
    EverySchedule,
    Identity,
    Observer,
    PeriodicInterpolation,
    Subset,
    TimesSchedule,
)


def test_periodic_interpolation_nodes_and_midpoints() -> None:
    x = torch.arange(10, dtype=torch.float64)[None] ** 2
    op = PeriodicInterpolation([0.0, 3.0, 2.5, 9.5, -0.5, 12.0], dim=10)
    expect = torch.tensor([[0.0, 9.0, 6.5, 40.5, 40.5, 4.0]], dtype=torch.float64)
    torch.testing.assert_close(op(x), expect)
    torch.testing.assert_close(
        op.locations[:, 0], torch.tensor([0, 3, 2.5, 9.5, 9.5, 2.0]).double()
    )


def test_arctan_jacobian_autograd_matches_finite_differences() -> None:
    op = Arctan(Subset([0, 2, 3], 5))
    x = torch.tensor([0.3, -1.0, 2.0, 0.1, -0.7], dtype=torch.float64)
    J = torch.autograd.functional.jacobian(op, x)
    h = 1e-6
    fd = torch.stack([(op(x + h * e) - op(x - h * e)) / (2 * h) for e in torch.eye(5).double()], 1)
    torch.testing.assert_close(J, fd, atol=1e-8, rtol=0)


def test_observer_noise_statistics(gen: torch.Generator) -> None:
    obs = Observer(Identity(4), torch.tensor([0.1, 1.0, 2.0, 0.5]))
    ys = obs.observe(torch.zeros(20000, 4, dtype=torch.float64), gen)
    torch.testing.assert_close(ys.std(0), obs.noise_std, rtol=0.03, atol=0)


def test_observer_rejects_bad_noise_and_shapes() -> None:
    with pytest.raises(ConfigError):
        Observer(Identity(3), -1.0)
    with pytest.raises(ConfigError):
        Observer(Identity(3), torch.ones(2))
    with pytest.raises(ConfigError):
        Subset([0, 5], 5)
    with pytest.raises(ConfigError):
        Identity(3)(torch.zeros(2, 4))


def test_schedules() -> None:
    s = EverySchedule(10)
    assert [s.step_of_cycle(c) for c in (1, 2, 3)] == [10, 20, 30]
    assert s.steps_before(3) == 10
    t = TimesSchedule((2, 3, 7))
    assert [t.steps_before(c) for c in (1, 2, 3)] == [2, 1, 4]
    with pytest.raises(ConfigError):
        TimesSchedule((3, 3))


def test_crps_equals_pairwise_definition(gen: torch.Generator) -> None:
    E = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    x = torch.randn(5, generator=gen, dtype=torch.float64)
    brute = (E - x).abs().mean(0) - 0.5 * (E[:, None] - E[None]).abs().mean((0, 1))
    torch.testing.assert_close(metrics.crps(E, x), brute.mean())
    # a one-member ensemble reduces to the absolute error
    torch.testing.assert_close(metrics.crps(E[:1], x), (E[0] - x).abs().mean())


def test_spread_rmse_coverage(gen: torch.Generator) -> None:
    E = torch.randn(8000, 3, generator=gen, dtype=torch.float64) * torch.tensor([1.0, 2.0, 3.0])
    assert abs(float(metrics.spread(E)) - (14 / 3) ** 0.5) < 0.03
    assert float(metrics.rmse(torch.ones(4), torch.zeros(4))) == 1.0
    assert float(metrics.coverage(E, torch.zeros(3))) == 1.0
    assert float(metrics.coverage(E, torch.full((3,), 100.0))) == 0.0
    # for truths drawn from the ensemble's own distribution, coverage is about 90 %
    truths = torch.randn(600, 3, generator=gen, dtype=torch.float64) * torch.tensor([1.0, 2.0, 3.0])
    cov = torch.stack([metrics.coverage(E, t) for t in truths]).mean()
    assert abs(float(cov) - 0.9) < 0.025


def test_operator_adjoints_equal_autograd(gen: torch.Generator) -> None:
    """Each hand-written ``vjp`` equals the autograd default of the base class."""
    from latentda.observations import LinearMap, ObservationOperator

    d = 9
    ops = [
        Identity(d),
        Subset([0, 4, 4, 8], d),
        PeriodicInterpolation([0.25, 3.5, 8.9, 12.0], d),
        LinearMap(torch.randn(5, d, generator=gen, dtype=torch.float64)),
        Arctan(PeriodicInterpolation([1.5, 7.25], d)),
    ]
    x = torch.randn(3, d, generator=gen, dtype=torch.float64)
    for op in ops:
        v = torch.randn(3, op.out_dim, generator=gen, dtype=torch.float64)
        torch.testing.assert_close(op.vjp(x, v), ObservationOperator.vjp(op, x, v))


def test_log_likelihood_gradient_ignores_missing(gen: torch.Generator) -> None:
    obs = Observer(Subset([1, 3], 4), torch.tensor([0.5, 2.0]))
    x = torch.randn(2, 4, generator=gen, dtype=torch.float64)
    y = torch.tensor([1.0, float("nan")], dtype=torch.float64)
    grad = obs.log_likelihood_grad(x, *obs.precision(y, x.dtype, x.device))
    expect = torch.zeros(2, 4, dtype=torch.float64)
    expect[:, 1] = (1.0 - x[:, 1]) / 0.25
    torch.testing.assert_close(grad, expect)
