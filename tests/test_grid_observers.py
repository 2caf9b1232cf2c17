"""Bilinear grid observers and sensor layouts against exact and brute-force references."""

import math

import numpy as np
import pytest
import torch

from latentda.errors import ConfigError
from latentda.observations.grid import BilinearGrid, noise_std_from_level
from latentda.observations.layouts import (
    fraction_to_count,
    from_file,
    moving,
    regular_subgrid,
    uniform_random,
)
from latentda.observations.observer import Observer
from latentda.observations.operators import ObservationOperator

H, W = 12, 16


def plane_axes(h: int = H, w: int = W) -> dict[str, torch.Tensor]:
    """Kolmogorov-like periodic plane on [0, 2π)²."""
    return {
        "y": torch.arange(h, dtype=torch.float64) * (2 * math.pi / h),
        "x": torch.arange(w, dtype=torch.float64) * (2 * math.pi / w),
    }


def tsunami_axes(n: int = 10) -> dict[str, torch.Tensor]:
    """Cell centres in metres on a 1000 km square."""
    dx = 1.0e6 / n
    c = (torch.arange(n, dtype=torch.float64) + 0.5) * dx
    return {"y": c, "x": c.clone()}


def linear_field(axes: dict[str, torch.Tensor], coef: torch.Tensor) -> torch.Tensor:
    """``f_c = a_c·y + b_c·x + c_c`` on the grid, ``(C, H, W)``; ``coef`` is ``(C, 3)``."""
    yy, xx = torch.meshgrid(*axes.values(), indexing="ij")
    return coef[:, 0, None, None] * yy + coef[:, 1, None, None] * xx + coef[:, 2, None, None]


def test_linear_field_read_exactly_at_interior_points(gen: torch.Generator) -> None:
    for axes, periodic in ((plane_axes(), (True, True)), (tsunami_axes(), (False, False))):
        ay, ax = axes.values()
        coef = torch.randn(3, 3, generator=gen, dtype=torch.float64)
        f = linear_field(axes, coef)
        u = torch.rand(50, 2, generator=gen, dtype=torch.float64)
        # Inside the node span, so no wrap or clamp is involved.
        pts = torch.stack(
            [ay[0] + u[:, 0] * (ay[-1] - ay[0]), ax[0] + u[:, 1] * (ax[-1] - ax[0])], -1
        )
        op = BilinearGrid(pts, tuple(f.shape), axes, periodic, channels=[2, 0])
        assert (op.in_dim, op.out_dim) == (f.numel(), 100)
        x = f.reshape(-1).expand(2, 3, -1)  # arbitrary leading batch axes
        y = op(x)
        assert y.shape == (2, 3, 100)
        expect = pts @ coef[[2, 0], :2].T + coef[[2, 0], 2]  # (m, C_obs)
        torch.testing.assert_close(op.readings_by_sensor(y[1, 2]), expect, rtol=1e-12, atol=1e-9)
        # Sensor-major: reading k·C_obs + c is channel channels[c] at sensor k.
        torch.testing.assert_close(y[0, 0, 1::2], expect[:, 1], rtol=1e-12, atol=1e-9)


def test_sensors_on_nodes_read_node_values_exactly(gen: torch.Generator) -> None:
    cases = [
        (plane_axes(), (True, True), torch.float64),
        (tsunami_axes(), (False, False), torch.float64),
        # float32 axes from linspace, a descending latitude and a periodic longitude.
        (
            {
                "lat": torch.linspace(90.0, -90.0, 7, dtype=torch.float32),
                "lon": torch.arange(0.0, 360.0, 30.0, dtype=torch.float32),
            },
            (False, True),
            torch.float32,
        ),
    ]
    for axes, periodic, dtype in cases:
        ay, ax = axes.values()
        f = torch.randn(2, ay.numel(), ax.numel(), generator=gen, dtype=torch.float64).to(dtype)
        iy = torch.tensor([0, 3, ay.numel() - 1, ay.numel() - 1, 0])
        ix = torch.tensor([0, 5, ax.numel() - 1, 0, ax.numel() - 1])
        pts = torch.stack([ay[iy], ax[ix]], -1)
        op = BilinearGrid(pts, tuple(f.shape), axes, periodic)
        y = op.readings_by_sensor(op(f.reshape(-1)))
        assert torch.equal(y, f[:, iy, ix].T)


def test_periodic_wrap_equals_reading_the_shifted_field(gen: torch.Generator) -> None:
    axes = plane_axes()
    hy, hx = 2 * math.pi / H, 2 * math.pi / W
    f = torch.randn(1, H, W, generator=gen, dtype=torch.float64)
    # Points in the seam cells (between the last node and the period), and one period away.
    u = torch.rand(20, 2, generator=gen, dtype=torch.float64)
    pts = torch.stack([(H - 1 + u[:, 0]) * hy, (W - 1 + u[:, 1]) * hx], -1)
    seam = BilinearGrid(pts, (1, H, W), axes, (True, True))
    far = pts + torch.tensor([-2 * math.pi, 6 * math.pi], dtype=torch.float64)
    shifted_pts = pts - torch.tensor([3 * hy, 2 * hx], dtype=torch.float64)  # interior cells
    g = torch.roll(f, shifts=(-3, -2), dims=(-2, -1))  # g[i, j] = f[i + 3, j + 2]
    inner = BilinearGrid(shifted_pts, (1, H, W), axes, (True, True))
    torch.testing.assert_close(seam(f.reshape(-1)), inner(g.reshape(-1)), rtol=1e-12, atol=1e-12)
    far_op = BilinearGrid(far, (1, H, W), axes, (True, True))
    torch.testing.assert_close(far_op(f.reshape(-1)), seam(f.reshape(-1)), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(far_op.locations, seam.locations, rtol=0, atol=1e-12)


def test_sphere_clamps_latitude_and_wraps_longitude(gen: torch.Generator) -> None:
    lat = torch.linspace(-87.5, 87.5, 36, dtype=torch.float64)  # 5° cell centres
    lon = torch.arange(72, dtype=torch.float64) * 5.0
    axes = {"lat": lat, "lon": lon}
    f = torch.randn(1, 36, 72, generator=gen, dtype=torch.float64)
    # Beyond the last latitude node (up to the pole) reads the edge row; lon 357.5 is mid-seam.
    op = BilinearGrid([[90.0, 357.5], [-89.0, 0.0], [87.5, -5.0]], (1, 36, 72), axes, (False, True))
    y = op(f.reshape(-1))
    expect = torch.stack([0.5 * (f[0, -1, -1] + f[0, -1, 0]), f[0, 0, 0], f[0, -1, -1]])
    torch.testing.assert_close(y, expect, rtol=1e-12, atol=1e-12)
    with pytest.raises(ConfigError, match="outside"):
        BilinearGrid([[91.0, 0.0]], (1, 36, 72), axes, (False, True))


def test_vjp_is_the_exact_adjoint(gen: torch.Generator) -> None:
    axes = tsunami_axes()
    pts = uniform_random(axes, 15, gen, (False, False))
    pts = torch.cat([pts, torch.tensor([[0.0, 1.0e6], [1.0e6, 5.0e4]], dtype=torch.float64)])
    op = BilinearGrid(pts, (3, 10, 10), axes, (False, False), channels=[1, 2])
    x = torch.randn(4, 300, generator=gen, dtype=torch.float64)
    v = torch.randn(4, op.out_dim, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(op.vjp(x, v), ObservationOperator.vjp(op, x, v), rtol=0, atol=1e-13)
    lhs = (op(x) * v).sum(-1)
    rhs = (x * op.vjp(x, v)).sum(-1)
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_locations_repeat_sensors_per_channel() -> None:
    axes = plane_axes()
    pts = torch.tensor([[0.5, 7.0], [1.0, -0.5]], dtype=torch.float64)
    op = BilinearGrid(pts, (3, H, W), axes, (True, True), channels=[0, 2])
    loc = op.locations
    assert loc.shape == (4, 2)
    wrapped = torch.remainder(pts, 2 * math.pi)
    torch.testing.assert_close(loc, wrapped.repeat_interleave(2, dim=0), rtol=0, atol=1e-12)


def test_constructor_and_call_validate_inputs() -> None:
    axes = tsunami_axes()
    ok = [[5.0e5, 5.0e5]]
    bad_calls = [
        lambda: BilinearGrid([[5.0e5, 1.2e6]], (1, 10, 10), axes, (False, False)),
        lambda: BilinearGrid([[5.0e5, -1.0]], (1, 10, 10), axes, (False, False)),
        lambda: BilinearGrid([5.0e5, 5.0e5], (1, 10, 10), axes, (False, False)),
        lambda: BilinearGrid([[float("nan"), 0.0]], (1, 10, 10), axes, (False, False)),
        lambda: BilinearGrid(ok, (1, 10, 11), axes, (False, False)),
        lambda: BilinearGrid(ok, (10, 10), axes, (False, False)),
        lambda: BilinearGrid(ok, (2, 10, 10), axes, (False, False), channels=[2]),
        lambda: BilinearGrid(ok, (2, 10, 10), axes, (False, False), channels=[0, 0]),
        lambda: BilinearGrid(ok, (1, 10, 10), {"y": axes["y"] ** 1.1, "x": axes["x"]}, (0, 0)),
        lambda: BilinearGrid(ok, (1, 10, 10), axes, (False, False))(torch.zeros(3, 99)),
    ]
    for call in bad_calls:
        with pytest.raises(ConfigError):
            call()
    # Edge of the physical domain (outer cell faces) is accepted and clamped.
    edge = BilinearGrid([[0.0, 1.0e6]], (1, 10, 10), axes, (False, False))
    f = torch.arange(100, dtype=torch.float64)
    assert float(edge(f)) == 9.0


def test_regular_subgrid_matches_the_paper_layout() -> None:
    n = 150
    axes = {"y": torch.arange(n, dtype=torch.float64), "x": torch.arange(n, dtype=torch.float64)}
    pts = regular_subgrid(axes, 10, 10)
    assert pts.shape == (100, 2)
    nodes = torch.arange(7, 150, 15, dtype=torch.float64)
    torch.testing.assert_close(pts[:10, 1], nodes)  # row-major: x varies fastest
    torch.testing.assert_close(pts[::10, 0], nodes)
    # Kolmogorov units: still on nodes, spacing 15 cells, also across the seam.
    ka = plane_axes(150, 150)
    kp = regular_subgrid(ka, 10, 10)
    torch.testing.assert_close(kp[:10, 1], ka["x"][7::15])
    gaps = torch.diff(torch.cat([kp[:10, 1], kp[:1, 1] + 2 * math.pi]))
    torch.testing.assert_close(gaps, torch.full((10,), 15 * 2 * math.pi / 150).double())
    # Not divisible: evenly spaced, symmetric about the centre.
    odd = regular_subgrid(tsunami_axes(64), 10, 3)
    torch.testing.assert_close(torch.diff(odd[::3, 0]), torch.full((9,), 1.0e5).double())
    torch.testing.assert_close(odd[:3, 1], torch.tensor([1, 3, 5]).double() * 1.0e6 / 6)
    with pytest.raises(ConfigError):
        regular_subgrid(axes, 0, 10)


def test_uniform_random_counts_domain_and_seed() -> None:
    axes = tsunami_axes()
    a = uniform_random(axes, 500, torch.Generator().manual_seed(7), (False, False))
    b = uniform_random(axes, 500, torch.Generator().manual_seed(7), (False, False))
    c = uniform_random(axes, 500, torch.Generator().manual_seed(8), (False, False))
    assert a.shape == (500, 2) and torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 5.0e4 and float(a.max()) <= 9.5e5  # node span
    sph = {"lat": torch.linspace(-90, 90, 19).double(), "lon": torch.arange(36).double() * 10}
    s = uniform_random(sph, 2000, torch.Generator().manual_seed(1), (False, True))
    assert -90 <= float(s[:, 0].min()) and float(s[:, 0].max()) <= 90
    assert 0 <= float(s[:, 1].min()) and float(s[:, 1].max()) < 360 and float(s[:, 1].max()) > 350
    BilinearGrid(s, (1, 19, 36), sph, (False, True))  # all readable
    assert fraction_to_count(0.0044, 150, 150) == 99
    assert fraction_to_count(0.001, 64, 64) == 4
    assert fraction_to_count(1e-9, 8, 8) == 1
    for bad in (0.0, 10.0, -0.1):
        with pytest.raises(ConfigError, match="fraction"):
            fraction_to_count(bad, 8, 8)


def test_from_file_round_trip_and_errors(tmp_path) -> None:
    pts = torch.tensor([[1.5, 2.0], [3.25, -4.0], [0.0, 1e5]], dtype=torch.float64)
    np.save(tmp_path / "s.npy", pts.numpy())
    np.savetxt(tmp_path / "s.csv", pts.numpy(), delimiter=",", header="y,x", comments="")
    np.savetxt(tmp_path / "one.csv", pts[:1].numpy(), delimiter=",")
    assert torch.equal(from_file(tmp_path / "s.npy"), pts)
    assert torch.equal(from_file(str(tmp_path / "s.csv")), pts)
    assert from_file(tmp_path / "one.csv").shape == (1, 2)
    np.save(tmp_path / "three.npy", np.zeros((4, 3)))
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan]]))
    (tmp_path / "bad.csv").write_text("y,x\n1,oops\n")
    (tmp_path / "s.json").write_text("[]")
    for name, msg in [
        ("missing.csv", "not found"),
        ("three.npy", "shape"),
        ("nan.npy", "NaN"),
        ("bad.csv", "numeric"),
        ("s.json", "must be"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            from_file(tmp_path / name)


def test_moving_sensors_wrap_and_reflect() -> None:
    axes = plane_axes()
    p0 = torch.tensor([[1.0, 6.0], [0.5, 0.1]], dtype=torch.float64)
    v = torch.tensor([0.0, 0.5], dtype=torch.float64)
    assert torch.allclose(moving(p0, v, 0.0, axes, (True, True)), p0)
    p = moving(p0, v, 1.0, axes, (True, True))
    torch.testing.assert_close(p, torch.tensor([[1.0, 6.5 - 2 * math.pi], [0.5, 0.6]]).double())
    # Wrapping a moving sensor equals reading the un-wrapped one on the periodic field.
    f = torch.randn(1, H, W, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    raw = BilinearGrid(p0 + v, (1, H, W), axes, (True, True))
    wrapped = BilinearGrid(p, (1, H, W), axes, (True, True))
    torch.testing.assert_close(raw(f.reshape(-1)), wrapped(f.reshape(-1)), rtol=0, atol=1e-12)
    # Non-periodic: reflect at the domain faces [0, 1e6], per-sensor velocities.
    ta = tsunami_axes()
    q0 = torch.tensor([[9.0e5, 5.0e5], [1.0e5, 5.0e5]], dtype=torch.float64)
    vq = torch.tensor([[2.0e5, 0.0], [-3.0e5, 0.0]], dtype=torch.float64)
    q = moving(q0, vq, 1.0, ta, (False, False))
    torch.testing.assert_close(q, torch.tensor([[9.0e5, 5.0e5], [2.0e5, 5.0e5]]).double())
    for t in (0.3, 7.7, 123.0):
        BilinearGrid(moving(q0, vq, t, ta, (False, False)), (1, 10, 10), ta, (False, False))
    with pytest.raises(ConfigError):
        moving(q0, torch.zeros(3), 1.0, ta, (False, False))


def test_noise_std_follows_output_order() -> None:
    sigma = noise_std_from_level(0.1, torch.tensor([1.0, 10.0]), 3)
    torch.testing.assert_close(sigma, torch.tensor([0.1, 1.0] * 3).double())
    axes = plane_axes()
    op = BilinearGrid(regular_subgrid(axes, 1, 3), (3, H, W), axes, (True, True), channels=[2, 0])
    std = torch.tensor([5.0, 7.0, 100.0], dtype=torch.float64)
    obs = Observer(op, noise_std_from_level(0.1, std[op.channels], op.n_sensors))
    torch.testing.assert_close(
        op.readings_by_sensor(obs.noise_std), torch.tensor([[10.0, 0.5]] * 3).double()
    )
    for args in ((0.0, [1.0], 2), (0.1, [0.0], 2), (0.1, [1.0], 0)):
        with pytest.raises(ConfigError):
            noise_std_from_level(*args)
