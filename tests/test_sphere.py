"""Forced shallow water on the sphere: physical checks at ``ci`` size (32×64, T15)."""

import json
import math

import pytest
import torch

from latentda.errors import ConfigError
from latentda.systems.base import FieldSystem
from latentda.systems.registry import field_system
from latentda.systems.sphere import (
    HOUR,
    Sphere,
    area_weights,
    equiangular_grid,
    height_forcing,
    swe_tendency,
    williamson2,
)

DAY = 24 * HOUR


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _mass(system: Sphere, x: torch.Tensor) -> torch.Tensor:
    """∫ h dA per member, ``(B,)``."""
    return (x[:, 0] * system.area_weights()).sum(dim=(-2, -1))


def _run(system: Sphere, x: torch.Tensor, u: torch.Tensor | None, frames: int) -> torch.Tensor:
    """``frames`` calls of ``step`` by ``frame_dt`` from ``t = 0`` (as ``simulate_frames``)."""
    for k in range(frames):
        x = system.step(x, u, system.frame_dt, k * system.frame_dt)
    return x


def test_williamson2_stays_steady_for_one_day() -> None:
    """Steady zonal geostrophic flow (u0 = 2πa/12 days, gh0 = 2.94e4 m²/s²), forcing off.

    The only change is the ∇⁸ hyperdiffusion of the l = 2 height (≈ 4e-6 of the deviation),
    so both relative L2 changes stay below 1e-5 (a transform or sign error gives O(1)).
    """
    sphere = Sphere.from_size("ci", forcing=False)
    lat, lon = equiangular_grid(sphere.nlat, sphere.nlon)
    x0 = williamson2(lat, lon, 2 * math.pi * sphere.radius / (12 * DAY), 2.94e4 / sphere.gravity)
    x1 = _run(sphere, x0[None], None, 3)[0]
    assert _rel(x1[0], x0[0]) < 1e-5
    assert _rel(x1[1:], x0[1:]) < 1e-5


def test_transforms_give_analytic_vorticity_and_divergence() -> None:
    """Non-zonal (m = 1) checks of the sign conventions: u_θ is northward, ζ = k·∇×V."""
    sphere = Sphere.from_size("ci")
    ops = sphere.operators()
    a = sphere.radius
    lat, lon = equiangular_grid(sphere.nlat, sphere.nlon)
    th, la = torch.meshgrid(lat, lon, indexing="ij")
    alpha, u0 = math.pi / 4, 30.0
    # Solid-body rotation about an axis tilted by α: ζ = 2u0/a (sin θ cos α − cos λ cos θ sin α).
    u = u0 * (torch.cos(th) * math.cos(alpha) + torch.cos(la) * torch.sin(th) * math.sin(alpha))
    v = -u0 * torch.sin(la) * math.sin(alpha)
    zeta = (
        2
        * u0
        / a
        * (torch.sin(th) * math.cos(alpha) - torch.cos(la) * torch.cos(th) * math.sin(alpha))
    )
    # Gradient of χ = cos θ cos λ: δ = ∇²χ = −2χ/a², no vorticity.
    chi = torch.cos(th) * torch.cos(la)
    grad = torch.stack([-torch.sin(la), -torch.sin(th) * torch.cos(la)]) / a
    x = torch.stack([torch.stack([chi, u, v]), torch.cat([chi[None], grad])])
    s = ops.to_spectral(x)
    g = ops.isht(s[:, 1:])
    torch.testing.assert_close(g[0, 0], zeta, rtol=0, atol=1e-12 * float(zeta.abs().max()))
    torch.testing.assert_close(g[1, 1], -2 * chi / a**2, rtol=0, atol=1e-12 / a**2)
    assert float(g[0, 1].abs().max()) < 1e-12 / a and float(g[1, 0].abs().max()) < 1e-12 / a**2
    torch.testing.assert_close(ops.to_grid(s), x, rtol=0, atol=1e-11)  # exact round trip


def test_initial_state_is_balanced_with_the_mean_depth(gen: torch.Generator) -> None:
    sphere = Sphere.from_size("ci")
    u = sphere.sample_params(2, gen)
    x = sphere.initial_state(u, gen)
    assert x.shape == (2, 3, 32, 64) and x.dtype == torch.float64
    mean = _mass(sphere, x) / (4 * math.pi * sphere.radius**2)
    torch.testing.assert_close(mean, torch.full_like(mean, sphere.mean_depth), rtol=1e-14, atol=0)
    ops = sphere.operators()
    s = ops.to_spectral(x)
    tend = swe_tendency(s, ops, sphere.gravity, None)
    flat = s.clone()
    flat[:, 0] = ops.to_spectral(torch.full_like(x, sphere.mean_depth))[:, 0]
    unbalanced = swe_tendency(flat, ops, sphere.gravity, None)
    # ∂δ/∂t vanishes to round-off (nonlinear balance): no gravity-wave shock at t = 0.
    assert float(tend[:, 2].abs().max()) < 1e-6 * float(unbalanced[:, 2].abs().max())
    torch.testing.assert_close(x[0], x[1])  # init="shared": one perturbation for all members
    other = Sphere.from_size("ci", init="random").initial_state(u, gen)
    assert not torch.allclose(other[0], other[1])
    again = sphere.initial_state(u, torch.Generator().manual_seed(1234))
    first = sphere.initial_state(u, torch.Generator().manual_seed(1234))
    assert torch.equal(again, first)


def test_mass_is_conserved(gen: torch.Generator) -> None:
    """∫ h dA is exact to round-off: unforced, and forced too (the source is mass-neutral)."""
    u = torch.tensor([[0.0, 2.0], [30.0, 1.0]], dtype=torch.float64)
    for forcing in (False, True):
        sphere = Sphere.from_size("ci", forcing=forcing)
        x0 = sphere.initial_state(u, gen)
        x1 = _run(sphere, x0, u, 3)
        assert float((_mass(sphere, x1) / _mass(sphere, x0) - 1).abs().max()) < 1e-12


def test_zero_amplitude_forcing_is_the_unforced_solver(gen: torch.Generator) -> None:
    forced = Sphere.from_size("ci")
    free = Sphere.from_size("ci", forcing=False)
    u = torch.tensor([[0.0, 1.0], [0.0, 3.5]], dtype=torch.float64)
    x = forced.initial_state(u, gen)
    assert torch.equal(forced.step(x, u, 8 * HOUR, 5 * HOUR), free.step(x, None, 8 * HOUR))
    u[1, 0] = 10.0  # and a non-zero amplitude does change the flow
    assert not torch.allclose(forced.step(x, u, 8 * HOUR)[1], free.step(x, None, 8 * HOUR)[1])


def test_forcing_moves_east_one_turn_a_day() -> None:
    """The maximum of h_f moves 90° east in 6 h; the amplitude is h_f0 in m/h; zero mean."""
    nlat, nlon = 32, 64
    lat, lon = equiangular_grid(nlat, nlon)
    h_f0, sigma = (
        torch.tensor([30.0], dtype=torch.float64),
        torch.tensor([1.0], dtype=torch.float64),
    )

    def peak_lon(t: float) -> float:
        f = height_forcing(lat, lon, t, h_f0, sigma)[0]
        return math.degrees(float(lon[int(f.argmax()) % nlon]))

    for t0 in (0.0, 3 * HOUR, 100 * HOUR):
        shift = (peak_lon(t0 + 6 * HOUR) - peak_lon(t0)) % 360.0
        assert abs(shift - 90.0) <= 360.0 / nlon + 1e-9
    # Peak value at the centre (λ_c, θ_c) = (0, 0) at t = 0 is h_f0 / 3600 m/s.
    centre = height_forcing(torch.zeros(1), torch.zeros(1), 0.0, h_f0, sigma)
    torch.testing.assert_close(centre, (h_f0 / 3600.0)[:, None, None])
    # θ_c = 0.4 sin(2πt/1008 h): at a quarter period the Gaussian is centred on 0.4 rad.
    t = 252 * HOUR + 7 * HOUR
    lats = torch.tensor([0.3, 0.4, 0.5], dtype=torch.float64)
    lon_c = torch.tensor([2 * math.pi * t / DAY], dtype=torch.float64)
    col = height_forcing(lats, lon_c, t, h_f0, sigma)[0, :, 0]
    assert int(col.argmax()) == 1
    field = height_forcing(lat, lon, 7 * HOUR, h_f0, sigma)
    assert abs(float((field * area_weights(nlat, nlon)).sum())) < 1e-16


def test_batched_equals_single_runs(gen: torch.Generator) -> None:
    sphere = Sphere.from_size("ci", init="random")
    u = sphere.sample_params(3, gen)
    x = sphere.initial_state(u, gen)
    batched = sphere.step(x, u, 8 * HOUR, 2 * HOUR)
    for i in range(3):
        single = sphere.step(x[i : i + 1], u[i : i + 1], 8 * HOUR, 2 * HOUR)
        torch.testing.assert_close(single, batched[i : i + 1], rtol=1e-12, atol=1e-9)


def test_restarting_each_frame_is_a_third_order_time_error(gen: torch.Generator) -> None:
    """Frame-wise calls restart AB3 (Heun, AB2 start) and round-trip the grid exactly, so two
    8 h calls differ from one 16 h call only by the O(Δt³) restart error."""
    u = torch.tensor([[20.0, 1.5]], dtype=torch.float64)
    diffs = []
    for courant in (0.5, 0.25):
        sphere = Sphere.from_size("ci", courant=courant)
        x = sphere.initial_state(u, torch.Generator().manual_seed(7))
        one = sphere.step(x, u, 16 * HOUR, 0.0)
        two = sphere.step(sphere.step(x, u, 8 * HOUR, 0.0), u, 8 * HOUR, 8 * HOUR)
        diffs.append(_rel(two[:, 1:], one[:, 1:]))
    assert diffs[0] < 2e-5
    assert diffs[0] / diffs[1] > 5.0  # 2³ = 8 in the asymptotic regime


def test_shapes_coords_axes_config_and_sizes(gen: torch.Generator) -> None:
    sphere = Sphere.from_size("ci")
    assert isinstance(sphere, FieldSystem)
    assert sphere.state_shape == (3, 32, 64)
    assert sphere.param_names == ("h_f0", "sigma")
    assert sphere.channel_names == ("h", "u_phi", "u_theta")
    assert sphere.dt == sphere.frame_dt == 8 * 3600 and sphere.n_frames == 63
    assert sphere.spinup_time == 3 * DAY
    coords, axes = sphere.coords(), sphere.axes()
    assert coords.shape == (32 * 64, 2) and list(axes) == ["lat", "lon"]
    assert axes["lat"].shape == (32,) and axes["lon"].shape == (64,)
    assert float(axes["lat"][0]) == 90.0 and float(axes["lat"][-1]) == pytest.approx(-90.0)
    assert float(axes["lon"][1]) == pytest.approx(360.0 / 64)
    # coords are (lat, lon) radians in the row-major order of the flattened (H, W) field
    i, j = 5, 17
    torch.testing.assert_close(
        coords[i * 64 + j], torch.deg2rad(torch.stack([axes["lat"][i], axes["lon"][j]]))
    )
    cfg = sphere.config()
    json.dumps(cfg)
    assert cfg["name"] == "sphere" and cfg["size"] == "ci" and cfg["truncation"] == 15
    assert cfg["sigma_units"] == "radians" and cfg["substep"] * cfg[
        "substeps_per_frame"
    ] == pytest.approx(8 * 3600)
    assert Sphere.from_size("bench").state_shape == (3, 64, 128)
    assert Sphere.from_size("paper").state_shape == (3, 256, 512)
    assert field_system("sphere", "ci", mean_depth=8000.0).config()["mean_depth"] == 8000.0
    with pytest.raises(ConfigError, match="allowed: ci, bench, paper"):
        Sphere.from_size("huge")
    with pytest.raises(ConfigError):
        Sphere(nlat=31, nlon=64)
    with pytest.raises(ConfigError):
        Sphere.from_size("ci", init="nope")
    p = sphere.sample_params(500, gen)
    assert p.shape == (500, 2) and p.dtype == torch.float64
    assert 0.1 <= float(p[:, 0].min()) and float(p[:, 0].max()) <= 30.0
    assert 1.0 <= float(p[:, 1].min()) and float(p[:, 1].max()) <= 4.0
    x = sphere.initial_state(p[:2], gen)
    with pytest.raises(ConfigError, match="h_f0, sigma"):
        sphere.step(x, p[:2, :1], sphere.dt)
    with pytest.raises(ConfigError):
        sphere.step(x[:, :2], p[:2], sphere.dt)


def test_forced_run_stays_finite_and_bounded(gen: torch.Generator) -> None:
    """Strongest, narrowest forcing of the prior over two days (spin-up, then 3 frames)."""
    sphere = Sphere.from_size("ci")
    u = torch.tensor([[30.0, 1.0], [30.0, 4.0]], dtype=torch.float64)
    x = sphere.step(sphere.initial_state(u, gen), u, 1 * DAY, 0.0)
    for k in range(3):
        x = sphere.step(x, u, sphere.frame_dt, DAY + k * sphere.frame_dt)
    assert bool(torch.isfinite(x).all())
    assert float((x[:, 0] - sphere.mean_depth).abs().max()) < 3000.0
    assert float(x[:, 1:].abs().max()) < 150.0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gauss_transforms_match_torch_harmonics(dtype: torch.dtype) -> None:
    """The batched-matmul transforms of the Gauss grid reproduce torch-harmonics' modules to
    round-off, and the zonal-wavenumber-one shortcut of the forcing equals the full transform."""
    import torch_harmonics as th

    from latentda.systems.sphere import GaussTransforms, gauss_grid_size

    lmax = 16
    ng, nlg = gauss_grid_size(lmax)
    kw = {"lmax": lmax, "mmax": lmax, "grid": "legendre-gauss", "csphase": False}
    ours = GaussTransforms(ng, nlg, lmax, torch.device("cpu"), dtype)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, ng, nlg, dtype=dtype, generator=g)
    v = torch.randn(3, 2, 2, ng, nlg, dtype=dtype, generator=g)
    tol = {"rtol": 0, "atol": 1e-12 if dtype == torch.float64 else 2e-5}
    ref = th.RealSHT(ng, nlg, **kw).to(dtype)(x)
    torch.testing.assert_close(ours.sht(x), ref, **tol)
    grid = th.InverseRealSHT(ng, nlg, **kw).to(dtype)(ref)
    torch.testing.assert_close(ours.isht(ref.clone()), grid, **tol)
    vref = th.RealVectorSHT(ng, nlg, **kw).to(dtype)(v)
    torch.testing.assert_close(ours.vsht(v), vref, **tol)
    inv = th.InverseRealVectorSHT(ng, nlg, **kw).to(dtype)(vref)
    torch.testing.assert_close(ours.ivsht(vref.clone()), inv, **tol)
    # profile(θ)·cos(λ − φ) on the grid, transformed in full, against the m = 1 shortcut
    cost, _ = th.quadrature.legendre_gauss_weights(ng, -1.0, 1.0)
    lat = (-torch.arcsin(cost)).to(dtype)
    lon = torch.arange(nlg, dtype=dtype) * (2 * math.pi / nlg)
    profile = torch.stack([torch.exp(-(lat**2)), torch.cos(lat) ** 3])
    field = profile[:, :, None] * torch.cos(lon - 0.7)[None, None, :]
    torch.testing.assert_close(ours.sht_wavenumber_one(profile, 0.7), ours.sht(field), **tol)
