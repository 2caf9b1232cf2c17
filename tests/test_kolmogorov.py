"""Kolmogorov flow: exact solutions (Taylor–Green decay, laminar forced shear), incompressibility,
batch = single runs with per-member sub-steps, the initial-state protocols, the public surface."""

import json
import math

import pytest
import torch

from latentda.errors import ConfigError
from latentda.systems.base import FieldSystem
from latentda.systems.kolmogorov import Kolmogorov
from latentda.systems.registry import field_system


def re(*values: float) -> torch.Tensor:
    return torch.tensor([[v] for v in values], dtype=torch.float64)


def spectral_divergence(x: torch.Tensor) -> torch.Tensor:
    """``∂u/∂x + ∂v/∂y`` of ``(B, 2, n, n)`` by full complex FFTs (independent of the module)."""
    n = x.shape[-1]
    k = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)
    k[n // 2] = 0.0  # odd derivative: drop the Nyquist mode
    uv = torch.fft.fft2(x.to(torch.complex128))
    return torch.fft.ifft2(1j * (k[None, :] * uv[:, 0] + k[:, None] * uv[:, 1])).real


def taylor_green(model: Kolmogorov, b: int) -> torch.Tensor:
    """``ψ = sin x sin y``: ``ω = 2 sin x sin y``, ``(u, v) = (sin x cos y, −cos x sin y)``."""
    yy, xx = torch.meshgrid(*model.axes().values(), indexing="ij")
    x = torch.stack([torch.sin(xx) * torch.cos(yy), -torch.cos(xx) * torch.sin(yy)])
    return x.expand(b, -1, -1, -1).clone()


@pytest.mark.parametrize("drag", [0.0, 0.1])
def test_taylor_green_decays_exactly(drag: float) -> None:
    """The nonlinear term vanishes, so ``x(t) = x(0) exp(−(2ν + α)t)`` for each member's ν."""
    model = Kolmogorov(n=16, forcing_amplitude=0.0, drag=drag)
    u = re(100.0, 400.0)
    x0 = taylor_green(model, 2)
    yy, xx = torch.meshgrid(*model.axes().values(), indexing="ij")
    torch.testing.assert_close(model.vorticity(x0)[0], 2 * torch.sin(xx) * torch.sin(yy))
    x1 = model.step(x0, u, 1.0)
    decay = torch.exp(-(2.0 / u[:, 0] + drag))[:, None, None, None]
    rel = (x1 - x0 * decay).norm() / (x0 * decay).norm()
    assert float(rel) < 1e-6


def test_laminar_forced_shear_fixes_the_forcing_sign() -> None:
    """From rest the flow stays a shear ``u = A sin(4y)(1 − e^{−λt})/λ``, ``λ = 16ν + α``:
    forcing ``+A sin(4y)`` on the x-momentum (vorticity forcing ``−4A cos(4y)``)."""
    model = Kolmogorov(n=16)
    u = re(1000.0)
    x1 = model.step(torch.zeros(1, *model.state_shape, dtype=torch.float64), u, 1.0)
    lam = 16.0 / 1000.0 + 0.1
    y = model.axes()["y"]
    expect = (torch.sin(4 * y) * (1 - math.exp(-lam)) / lam)[:, None].expand(16, 16)
    torch.testing.assert_close(x1[0, 0], expect, rtol=0, atol=1e-9)
    assert float(x1[0, 1].abs().max()) < 1e-12


def test_step_returns_divergence_free_zero_mean_velocity() -> None:
    model = Kolmogorov.from_size("ci", init="random")
    u = re(700.0, 1300.0)
    x0 = model.initial_state(u, torch.Generator().manual_seed(3))
    # An input with a mean flow and an irrotational part: both are projected out.
    yy, xx = torch.meshgrid(*model.axes().values(), indexing="ij")
    x0 = x0 + 0.3 + torch.stack([torch.sin(xx), torch.sin(yy)])
    x1 = model.step(x0, u, 0.4)
    assert x1.shape == x0.shape and x1.dtype == torch.float64
    div = spectral_divergence(x1)
    assert float(div.abs().max()) < 1e-12 * float(x1.abs().max()) * model.n
    assert float(x1.mean((-2, -1)).abs().max()) < 1e-14
    assert float(spectral_divergence(x0).abs().max()) > 0.1  # the projection did something


def test_batch_with_two_reynolds_numbers_equals_single_runs() -> None:
    """Members choose their own sub-steps: the fast (3×) member takes more of them, and the
    batch still reproduces each single run."""
    model = Kolmogorov.from_size("ci")
    u = re(600.0, 1400.0)
    base = model.initial_state(u)
    x0 = torch.cat([base[:1], 3.0 * base[1:]])
    batched = model.step(x0, u, 0.6)
    for i in range(2):
        single = model.step(x0[i : i + 1], u[i : i + 1], 0.6)
        torch.testing.assert_close(batched[i : i + 1], single, rtol=0, atol=1e-12)
    # float32 input stays float32 and agrees with the float64 run to single precision.
    x32 = model.step(x0.float(), u, 0.6)
    assert x32.dtype == torch.float32
    torch.testing.assert_close(x32.double(), batched, rtol=0, atol=1e-4)


def test_shared_and_random_initial_states() -> None:
    u = re(500.0, 900.0, 1500.0)
    shared = Kolmogorov.from_size("ci")
    a = shared.initial_state(u, torch.Generator().manual_seed(1))
    b = shared.initial_state(u[:1], torch.Generator().manual_seed(2))
    assert a.shape == (3, 2, 32, 32) and a.dtype == torch.float64
    for i in range(3):
        torch.testing.assert_close(a[i : i + 1], b, rtol=0, atol=0)
    rms = a.pow(2).sum(1).mean((-2, -1)).sqrt()
    torch.testing.assert_close(rms, torch.ones(3, dtype=torch.float64))
    assert float(spectral_divergence(a).abs().max()) < 1e-12
    # The same continuous field at every resolution: bench nodes at even indices are ci nodes.
    fine = Kolmogorov.from_size("bench").initial_state(u[:1])
    torch.testing.assert_close(fine[..., ::2, ::2], b, rtol=0, atol=1e-12)
    # Energy sits near |k| = 4.
    w_hat = torch.fft.fft2(shared.vorticity(b)[0]).abs() ** 2
    k = torch.fft.fftfreq(32, d=1.0 / 32, dtype=torch.float64)
    kk = torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    assert float(w_hat[(kk >= 2) & (kk <= 6)].sum() / w_hat.sum()) > 0.95
    assert not torch.equal(a, Kolmogorov.from_size("ci", init_seed=1).initial_state(u))

    rnd = Kolmogorov.from_size("ci", init="random")
    c = rnd.initial_state(u, torch.Generator().manual_seed(1))
    d = rnd.initial_state(u, torch.Generator().manual_seed(1))
    torch.testing.assert_close(c, d, rtol=0, atol=0)
    assert float((c[0] - c[1]).abs().max()) > 0.1 and float((c[1] - c[2]).abs().max()) > 0.1
    assert rnd.initial_state(u, dtype=torch.float32, gen=torch.Generator()).dtype == torch.float32


def test_forced_run_stays_finite_with_sane_energy() -> None:
    """Spin-up at ci size from the shared state: finite, energy of order one, and the mean flow
    correlates positively with the forcing ``sin(4y)``."""
    model = Kolmogorov.from_size("ci")
    u = re(1000.0)
    x = model.step(model.initial_state(u), u, model.spinup_time)
    assert bool(torch.isfinite(x).all())
    energies = []
    for _ in range(5):
        x = model.step(x, u)
        energies.append(float(0.5 * x.pow(2).sum(1).mean()))
    assert all(0.2 < e < 5.0 for e in energies), energies
    y = model.axes()["y"]
    assert float((x[0, 0] * torch.sin(4 * y)[:, None]).mean()) > 0.05


def test_public_surface_and_errors() -> None:
    model = Kolmogorov.from_size("ci")
    assert isinstance(model, FieldSystem)
    assert (model.n, model.state_shape, model.size) == (32, (2, 32, 32), "ci")
    assert model.param_names == ("reynolds",) and model.channel_names == ("u", "v")
    assert (model.dt, model.frame_dt, model.n_frames, model.spinup_time) == (0.2, 0.2, 40, 4.0)
    assert model.domain_lengths == (2 * math.pi, 2 * math.pi)
    assert Kolmogorov.from_size("bench").n == 64 and Kolmogorov.from_size("paper").n == 150
    axes = model.axes()
    assert list(axes) == ["y", "x"] and axes["x"].shape == (32,)
    torch.testing.assert_close(axes["y"][1], torch.tensor(2 * math.pi / 32, dtype=torch.float64))
    xyz = model.coords()
    assert xyz.shape == (32 * 32, 2)
    # Row-major like a flattened (H, W) field: point 33 is row 1 (y), column 1 (x).
    torch.testing.assert_close(xyz[33], torch.stack([axes["y"][1], axes["x"][1]]))
    torch.testing.assert_close(xyz[1], torch.stack([axes["y"][0], axes["x"][1]]))

    cfg = model.config()
    assert cfg["name"] == "kolmogorov" and cfg["size"] == "ci" and cfg["n"] == 32
    for key in ("drag", "forcing_amplitude", "forcing_wavenumber", "cfl", "max_dt", "init_seed"):
        assert key in cfg
    json.dumps(cfg)
    assert Kolmogorov(**{k: v for k, v in cfg.items() if k != "name"}) == model
    assert field_system("kolmogorov", "ci", init="random").init == "random"

    p = model.sample_params(1000, torch.Generator().manual_seed(0))
    assert p.shape == (1000, 1) and p.dtype == torch.float64
    assert float(p.min()) >= 500 and float(p.max()) <= 1500 and float(p.std()) > 250
    torch.testing.assert_close(p, model.sample_params(1000, torch.Generator().manual_seed(0)))

    with pytest.raises(ConfigError, match="allowed: ci, bench, paper"):
        Kolmogorov.from_size("huge")
    with pytest.raises(ConfigError, match="unknown kolmogorov option"):
        Kolmogorov.from_size("ci", viscosity=1.0)
    with pytest.raises(ConfigError, match="init must be"):
        Kolmogorov(init="zero")
    with pytest.raises(ConfigError, match="forcing_wavenumber"):
        Kolmogorov(n=12)
    x = model.initial_state(re(800.0))
    with pytest.raises(ConfigError, match="parameters must be"):
        model.step(x, torch.ones(1, 2, dtype=torch.float64))
    with pytest.raises(ConfigError, match="states must be"):
        model.step(x[0], re(800.0))
    with pytest.raises(ConfigError, match="dt >= 0"):
        model.step(x, re(800.0), -0.1)
    torch.testing.assert_close(model.step(x, re(800.0), 0.0), x, rtol=0, atol=1e-14)


def test_advance_reports_each_members_substeps() -> None:
    """``advance`` = ``step`` plus the CFL sub-step count of each member, the same in a batch
    as alone; a faster flow takes more sub-steps."""
    model = Kolmogorov.from_size("ci", init="random")
    u = re(600.0, 1400.0)
    x = model.initial_state(u, torch.Generator().manual_seed(2))
    x = torch.cat([x[:1], 3.0 * x[1:]])  # member 1 three times as fast
    y, counts = model.advance(x, u, 0.2)
    torch.testing.assert_close(y, model.step(x, u, 0.2), rtol=0, atol=0)
    assert counts.dtype == torch.int64 and counts.shape == (2,)
    for j in range(2):
        alone = model.advance(x[j : j + 1], u[j : j + 1], 0.2)[1]
        assert int(alone[0]) == int(counts[j])
    assert int(counts[1]) > int(counts[0]) >= math.ceil(0.2 / model.max_dt)
