"""Where LEVDA's time goes, against 4DEnVar's, for one window (issue 6's ">= 100x" target).

One Gauss–Newton iteration of each method on a window of ``--window`` observation times
``--every`` frames apart (the frames 0, every, …; the sparse setting's 5), measured in
the same process (best of ``--repeats``, the torch threads the caller sets):

- LEVDA: the window's observation map ``κ ↦ R^{-1/2} H(M(κ))`` (LDNet latent rollout, then
  the reconstruction net at the ``ny × nx`` regular sensors of every frame) for one control,
  at ``min(N, d) + 1`` controls in one batch, and its Jacobian (:func:`window_jacobian`:
  reverse mode through the latent rollout, forward mode through the decoder; one per
  iteration), against the same Jacobian by forward mode through the whole map with
  ``min(N, d)`` tangents (:func:`forward_mode_jacobian`, what LEVDA did until 2026-12-08),
  which it must equal to round-off;
- 4DEnVar: the full-order forecast of the ``N`` members over the window's frames, what each
  of its iterations runs.

The readings are the first test trajectory's fields at the sensors (their values do not change
the cost). Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/levda_cost.py --data D.zarr --ldnet DIR \\
        [--window 8] [--every 1] [--members 20] [--ny 10 --nx 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from _common import best, save
from latentda.data import open_dataset
from latentda.data.splits import dataset_axes, dataset_info, load_split, unit_coords
from latentda.filters.levda import LatentReadings, WindowObservations, window_jacobian
from latentda.observations.layouts import regular_subgrid
from latentda.surrogates.train_ldnet import load_ldnet
from latentda.systems.registry import system_from_config


def forward_mode_jacobian(
    obs: WindowObservations, mean: torch.Tensor, X: torch.Tensor, w: torch.Tensor
) -> torch.Tensor:
    """The reference: ``∂obs(κ̄ + X w)/∂w`` ``(m, N)`` by :func:`torch.func.jacfwd` through
    the whole map, with the control's ``d`` unit vectors as tangents when ``d < N`` (then
    times ``X``), else the ``N`` columns of ``X``."""
    d, n = X.shape
    with torch.no_grad():
        if d < n:
            return torch.func.jacfwd(obs)(mean + X @ w.to(X.dtype)) @ X
        return torch.func.jacfwd(lambda v: obs(mean + X @ v))(w.to(X.dtype))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--ldnet", type=Path, required=True)
    p.add_argument("--window", type=int, default=8)
    p.add_argument("--every", type=int, default=1)
    p.add_argument("--members", type=int, default=20)
    p.add_argument("--ny", type=int, default=10)
    p.add_argument("--nx", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    if min(a.window, a.every, a.members, a.ny, a.nx, a.repeats) < 1:
        p.error("--window, --every, --members, --ny, --nx and --repeats must be >= 1")

    ds = open_dataset(a.data)
    info = dataset_info(ds)
    run = load_ldnet(a.ldnet, ds)
    model, norm = run.model, run.normaliser
    test = load_split(ds, "test", [0])
    axes = dataset_axes(ds)
    points = regular_subgrid(axes, a.ny, a.nx)  # (S, 2) in grid units
    # the node nearest each sensor: the readings' values do not change the cost
    iy, ix = ((points[:, i, None] - ax).abs().argmin(-1) for i, ax in enumerate(axes))
    fields = test.fields[0].double()  # (T, C, H, W)
    std = 0.1 * norm.channel_std.double()  # 10 % noise, in physical units
    readings = [
        LatentReadings(
            float(k),
            unit_coords(points, axes),
            norm.normalise_fields(fields[k, :, iy, ix].T, -1),
            std / norm.channel_std.double(),
        )
        for k in range(0, a.window * a.every, a.every)
    ]
    obs = WindowObservations(model, 0.0, readings)
    dtype = next(model.parameters()).dtype
    gen = torch.Generator().manual_seed(0)
    d = model.config.latent_dim + model.n_params
    ensemble = (0.1 * torch.randn(a.members, d, generator=gen)).to(dtype)
    mean = ensemble.mean(0)
    X = (ensemble - mean).T / (a.members - 1) ** 0.5
    w = torch.zeros(a.members, dtype=torch.float64)

    with torch.no_grad():
        fwd1 = best(lambda: obs(mean), a.repeats)
        batch = mean.expand(min(a.members, d) + 1, d).contiguous()
        fwd_batch = best(lambda: obs(batch), a.repeats)
    # The results compared are the timings' warm-up calls.
    ours, theirs = window_jacobian(obs, mean, X, w)[1], forward_mode_jacobian(obs, mean, X, w)
    jac_diff = float((ours - theirs).abs().max() / theirs.abs().max())
    jac = best(lambda: window_jacobian(obs, mean, X, w), a.repeats, warmup=False)
    ref = best(lambda: forward_mode_jacobian(obs, mean, X, w), a.repeats, warmup=False)

    system = system_from_config(info["system"])
    u = test.params[[0] * a.members]
    x0 = fields[0].expand(a.members, *fields.shape[1:]).contiguous()

    def forecast() -> None:
        x, t = x0, system.spinup_time
        for _ in range((a.window - 1) * a.every + 1):
            x = system.step(x, u, system.frame_dt, t)
            t += system.frame_dt

    full = best(forecast, max(1, a.repeats // 2))
    results = {
        "system": info["system"]["name"],
        "window": a.window,
        "every": a.every,
        "members": a.members,
        "readings": obs.size,
        "control_dim": d,
        "threads": torch.get_num_threads(),
        "levda_map_1_s": fwd1,
        "levda_map_batch_s": fwd_batch,
        "levda_jacobian_s": jac,
        "forward_mode_jacobian_s": ref,
        "jacobian_rel_diff": jac_diff,
        "full_order_window_forecast_s": full,
    }
    print(
        f"{results['system']}: window {a.window} times {a.every} frame(s) apart, "
        f"{obs.size} readings, control d = {d}, N = {a.members}, {results['threads']} thread(s)\n"
        f"LEVDA observation map, 1 control:          {fwd1 * 1e3:8.1f} ms\n"
        f"LEVDA observation map, {batch.shape[0]} controls:        {fwd_batch * 1e3:8.1f} ms\n"
        f"LEVDA Jacobian (one iteration):            {jac * 1e3:8.1f} ms\n"
        f"  forward mode, {min(a.members, d)} tangents (reference):   {ref * 1e3:8.1f} ms "
        f"(max rel. difference {jac_diff:.1e})\n"
        f"4DEnVar forecast, {a.members} members through the window: {full * 1e3:8.1f} ms\n"
        f"ratio full-order forecast / LEVDA Jacobian: {full / jac:.2f}"
    )
    print(f"-> {save('levda-cost-' + results['system'], results)}")


if __name__ == "__main__":
    main()
