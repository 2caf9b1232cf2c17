"""Physical and API checks of the tsunami (C-grid shallow water) system, at ci size or smaller."""

import json
import math

import pytest
import torch

from latentda.errors import ConfigError
from latentda.systems.base import FieldSystem, simulate_frames
from latentda.systems.registry import field_system
from latentda.systems.tsunami import (
    CHANNEL_OFFSETS,
    Tsunami,
    coriolis_u,
    coriolis_v,
    face_fluxes,
    u_to_v,
    v_to_u,
)


def bumpy_bed(n: int, gen: torch.Generator) -> torch.Tensor:
    """Depth between 50 and 150 m with cell-to-cell jumps, ``(n, n)``."""
    return 50.0 + 100.0 * torch.rand(n, n, generator=gen, dtype=torch.float64)


def centred(system: Tsunami, b: int = 1) -> torch.Tensor:
    """Source parameters ``(b, 2)`` at the basin centre ``(L/2, L/2)``."""
    return torch.full((b, 2), system.length / 2, dtype=torch.float64)


def test_mass_conserved_with_walls_coriolis_and_bathymetry(gen: torch.Generator) -> None:
    """Σ η dx² is constant to round-off over 12 h (450 sub-steps) of wall reflections."""
    system = Tsunami.from_size("ci", bathymetry=bumpy_bed(32, gen))
    u = torch.tensor([[1.0e5, 2.0e5], [4.0e5, 3.0e4]], dtype=torch.float64)  # near walls
    frames = simulate_frames(system, u, system.initial_state(u, gen))
    assert frames.shape == (2, 51, 3, 32, 32)
    mass = system.mass(frames)  # (2, 51)
    rel = ((mass - mass[:, :1]) / mass[:, :1]).abs().max()
    assert float(rel) < 1e-10
    assert torch.isfinite(frames).all()
    # The walls stay closed and the waves reached them.
    assert float(frames[:, :, 0, :, -1].abs().max()) == 0.0
    assert float(frames[:, :, 1, -1, :].abs().max()) == 0.0
    assert float(frames[:, -1, 2, :, -1].abs().max()) > 1e-3


@pytest.mark.parametrize("level", [0.0, 0.5])
def test_lake_at_rest_over_bumpy_bed(gen: torch.Generator, level: float) -> None:
    """A flat surface at rest over a rough bed (with rotation) stays at rest."""
    system = Tsunami(n=16, bathymetry=bumpy_bed(16, gen))
    x0 = torch.zeros(2, *system.state_shape, dtype=torch.float64)
    x0[:, 2] = level
    x = system.step(x0, dt=5 * system.frame_dt)
    assert float((x - x0).abs().max()) <= 1e-12


def _front_radius(profile: torch.Tensor, r: torch.Tensor, threshold: float) -> float:
    """Outermost radius where ``profile`` exceeds ``threshold``, linearly interpolated."""
    k = int((profile > threshold).nonzero().max())
    a, b = float(profile[k]), float(profile[k + 1])
    return float(r[k] + (a - threshold) / (a - b) * (r[k + 1] - r[k]))


def test_wave_front_travels_at_gravity_wave_speed() -> None:
    """The front of a bump moves at √(gH) (no rotation) along both axes.

    A 2-D ring decays like 1/√r, so a fixed threshold on |η| slides back along the profile
    and under-reads the speed by a threshold-dependent few per cent; thresholding
    √(r/σ)·|η| instead follows one point of the travelling profile (measured: within 0.3 %).
    """
    system = Tsunami(n=32, f0=0.0, beta=0.0)
    n, c = system.n, math.sqrt(system.gravity * system.depth)
    centre = (n // 2 + 0.5) * system.dx  # on a cell centre, so row/column n//2 is an axis
    u = torch.full((1, 2), centre, dtype=torch.float64)
    t1, t2 = 3000.0, 9000.0
    x1 = system.step(system.initial_state(u), dt=t1)
    x2 = system.step(x1, dt=t2 - t1)
    r = system.axes()["x"][n // 2 :] - centre
    weight = (r / system.source_width).sqrt()
    for cut in (lambda e: e[n // 2, n // 2 :], lambda e: e[n // 2 :, n // 2]):  # +x, +y
        r1 = _front_radius(cut(x1[0, 2]).abs() * weight, r, 0.1)
        r2 = _front_radius(cut(x2[0, 2]).abs() * weight, r, 0.1)
        assert r1 > 1.5 * system.source_width  # the ring has left the source
        speed = (r2 - r1) / (t2 - t1)
        assert abs(speed / c - 1) < 0.05


def test_centred_source_without_rotation_is_symmetric() -> None:
    """x↔y reflection swaps u and v; mirrors in x (and y) flip u (v) about the staggering."""
    system = Tsunami(n=32, f0=0.0, beta=0.0)
    x = system.step(system.initial_state(centred(system)), dt=8 * system.frame_dt)[0]
    u, v, eta = x[0], x[1], x[2]
    scale = float(eta.abs().max())
    assert scale > 1e-2
    tol = 1e-10 * scale
    assert float((eta - eta.T).abs().max()) <= tol
    assert float((u - v.T).abs().max()) <= tol
    assert float((eta - eta.flip(-1)).abs().max()) <= tol
    assert float((eta - eta.flip(-2)).abs().max()) <= tol
    # u[j, i] sits at x = (i+1)dx, its mirror image at x = L − (i+1)dx is u[j, n−2−i].
    assert float((u[:, :-1] + u[:, :-1].flip(-1)).abs().max()) <= tol
    assert float((u - u.flip(-2)).abs().max()) <= tol


def test_shapes_coords_axes_and_staggering() -> None:
    system = Tsunami.from_size("ci")
    assert isinstance(system, FieldSystem)
    n, dx = 32, 1.0e6 / 32
    assert system.state_shape == (3, n, n)
    assert system.param_names == ("x_c", "y_c")
    assert system.channel_names == ("u", "v", "eta")
    assert system.dt == system.frame_dt == pytest.approx(6000.0 / 7.0)
    assert (system.n_frames, system.spinup_time, system.domain_lengths) == (51, 0.0, None)
    axes = system.axes()
    assert list(axes) == ["y", "x"]
    assert torch.allclose(axes["x"], (torch.arange(n, dtype=torch.float64) + 0.5) * dx)
    coords = system.coords()
    assert coords.shape == (n * n, 2) and coords.dtype == torch.float64
    # Row-major (y, x): flat index j·n + i is cell (j, i).
    assert coords[1 * n + 2].tolist() == [1.5 * dx, 2.5 * dx]
    cc = system.channel_coords()
    assert set(cc) == set(CHANNEL_OFFSETS) == {"u", "v", "eta"}
    assert torch.equal(cc["eta"], coords)
    assert cc["u"][1 * n + 2].tolist() == [1.5 * dx, 3.0 * dx]  # east face
    assert cc["v"][1 * n + 2].tolist() == [2.0 * dx, 2.5 * dx]  # north face
    assert float(system.channel_axes()["u"]["x"][-1]) == pytest.approx(1.0e6)  # east wall
    # Sub-steps: τ ≤ 0.1 dx/√(gH), an integer number per frame.
    assert system.substeps(system.frame_dt) == 9
    assert system.frame_dt / 9 <= 0.1 * dx / math.sqrt(9.81 * 100)
    assert Tsunami.from_size("bench").substeps(system.frame_dt) == 18
    assert Tsunami.from_size("paper").substeps(system.frame_dt) == 41


def test_params_initial_state_and_devices(gen: torch.Generator) -> None:
    system = Tsunami.from_size("ci")
    u = system.sample_params(500, gen)
    assert u.shape == (500, 2) and u.dtype == torch.float64
    assert float(u.min()) >= 0.0 and float(u.max()) <= system.length / 2
    assert float(u.mean()) == pytest.approx(system.length / 4, rel=0.1)
    assert torch.equal(u[:3], system.sample_params(3, torch.Generator().manual_seed(1234)))
    x0 = system.initial_state(u[:4], gen)
    assert x0.shape == (4, 3, 32, 32)
    assert float(x0[:, :2].abs().max()) == 0.0  # at rest
    # The bump peaks at 1 m at the source; its width is σ = 50 km.
    x0 = system.initial_state(torch.tensor([[2.5 * system.dx, 1.5 * system.dx]]), gen)
    assert float(x0[0, 2, 1, 2]) == pytest.approx(1.0)
    assert float(x0[0, 2, 1, 3]) == pytest.approx(math.exp(-(system.dx**2) / (2 * 5e4**2)))
    # The dtype of the state is kept by step.
    x32 = system.step(x0.float(), dt=100.0)
    assert x32.dtype == torch.float32


def test_config_from_size_and_errors(gen: torch.Generator) -> None:
    system = Tsunami.from_size("bench", sponge_width=1e5)
    cfg = system.config()
    assert cfg["name"] == "tsunami" and cfg["size"] == "bench" and cfg["n"] == 64
    for key in ("length", "depth", "gravity", "f0", "beta", "amplitude", "source_width", "cfl"):
        assert key in cfg
    assert (cfg["f0"], cfg["beta"], cfg["depth"], cfg["bathymetry"]) == (1e-4, 2e-11, 100.0, None)
    json.dumps(cfg)  # plain data
    bathy = Tsunami(n=8, bathymetry=bumpy_bed(8, gen))
    cfg = bathy.config()
    rebuilt = Tsunami(**{k: v for k, v in json.loads(json.dumps(cfg)).items() if k != "name"})
    assert rebuilt.config() == cfg
    assert field_system("tsunami", "ci").config() == Tsunami.from_size("ci").config()
    with pytest.raises(ConfigError, match="allowed: ci, bench, paper"):
        Tsunami.from_size("huge")
    with pytest.raises(ConfigError, match="unknown tsunami option"):
        Tsunami.from_size("ci", depht=50.0)
    with pytest.raises(ConfigError, match="bathymetry"):
        Tsunami(n=8, bathymetry=torch.ones(4, 4))
    with pytest.raises(ConfigError, match="bathymetry"):
        Tsunami(n=8, bathymetry=-torch.ones(8, 8))
    with pytest.raises(ConfigError, match="depth"):
        Tsunami(depth=0.0)
    with pytest.raises(ConfigError, match="states"):
        Tsunami(n=8).step(torch.zeros(1, 3, 8, 9))
    with pytest.raises(ConfigError, match="dt"):
        Tsunami(n=8).step(torch.zeros(1, 3, 8, 8), dt=-1.0)


def test_batched_equals_single_runs(gen: torch.Generator) -> None:
    system = Tsunami(n=16, bathymetry=bumpy_bed(16, gen), sponge_width=1e5)
    u = system.sample_params(3, gen)
    x0 = system.initial_state(u, gen)
    batched = system.step(x0, u, 3 * system.frame_dt)
    for i in range(3):
        single = system.step(x0[i : i + 1], u[i : i + 1], 3 * system.frame_dt)
        torch.testing.assert_close(single, batched[i : i + 1], rtol=0, atol=1e-14)
    # Unbatched states (3, n, n) work too.
    torch.testing.assert_close(system.step(x0[0], dt=100.0), system.step(x0[:1], dt=100.0)[0])


def test_coriolis_averaging_is_adjoint_and_energy_neutral(gen: torch.Generator) -> None:
    """⟨A v, u⟩ = ⟨v, Aᵀ u⟩ on interior faces, so the β-plane Coriolis pair does no work."""
    system = Tsunami(n=12)
    u = torch.randn(12, 12, generator=gen, dtype=torch.float64)
    v = torch.randn(12, 12, generator=gen, dtype=torch.float64)
    u[:, -1] = 0.0  # wall faces
    v[-1, :] = 0.0
    torch.testing.assert_close((v_to_u(v) * u).sum(), (v * u_to_v(u)).sum(), rtol=1e-14, atol=0)
    f_v = system.coriolis()
    work = (u * coriolis_u(v, f_v)).sum() + (v * coriolis_v(u, f_v)).sum()
    assert abs(float(work)) < 1e-17
    # Upwind face depth: u > 0 takes the west cell, u < 0 the east one.
    h = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    fx, fy = face_fluxes(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]).double(), torch.zeros(2, 2), h)
    assert fx.tolist() == [[1.0, 0.0], [-4.0, 0.0]]


def test_rotation_is_stable_and_sponge_absorbs(gen: torch.Generator) -> None:
    """Over 12 h with rotation the energy never grows (upwinding only dissipates slightly);
    a sponge near the walls takes most of it out."""
    closed = Tsunami(n=16)
    sponge = Tsunami(n=16, sponge_width=1.5e5, sponge_timescale=1800.0)
    u = torch.tensor([[3.0e5, 4.0e5]], dtype=torch.float64)
    x0 = closed.initial_state(u, gen)
    e0 = float(closed.energy(x0)[0])
    x_closed, x_sponge = x0, x0
    for _ in range(10):
        x_closed = closed.step(x_closed, dt=5 * closed.frame_dt)
        assert float(closed.energy(x_closed)[0]) <= e0
    x_sponge = sponge.step(x0, dt=50 * closed.frame_dt)
    assert float(closed.energy(x_closed)[0]) > 0.5 * e0
    assert float(sponge.energy(x_sponge)[0]) < 0.1 * e0
