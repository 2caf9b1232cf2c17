"""Per-channel errors of a trained LDNet on the test split, against a climatology.

The relative RMSE of DESIGN 5.1 pools the channels in physical units, so a channel with a
large mean (the sphere's ~10 km depth ``h``) hides the others and the time-varying part. This
script prints, per channel ``c``, over all test trajectories, frames and grid points:

- ``rel``: ``‖x̂_c − x_c‖ / ‖x_c‖`` (DESIGN 5.1 restricted to one channel);
- ``anomaly``: ``‖x̂_c − x_c‖ / ‖x_c − x̄_c(t)‖`` with ``x̄_c(t)`` the training trajectories' mean
  field at the same frame (the climatology: 1 means no better than it, 0 is perfect);
- the same two numbers for the climatology itself and for the nearest-parameter training
  trajectory (a lookup).

Usage::

    .venv/bin/python benchmarks/ldnet_channels.py --data D.zarr --ldnet RUN_DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from _common import save
from latentda.data import open_dataset
from latentda.data.splits import grid_coords, load_split
from latentda.surrogates.train_ldnet import load_ldnet


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--ldnet", type=Path, required=True)
    a = p.parse_args()

    ds = open_dataset(a.data)
    run = load_ldnet(a.ldnet, ds)
    model, norm = run.model, run.normaliser
    train, test = load_split(ds, "train"), load_split(ds, "test")
    clim = train.fields.double().mean(0)  # (T, C, H, W)
    coords = grid_coords(ds)
    lo, hi = norm.param_low, norm.param_high
    scaled = (train.params - lo) / (hi - lo)
    n_ch = test.fields.shape[2]
    sums = {k: torch.zeros(n_ch, dtype=torch.float64) for k in ("err", "clim", "near", "x", "anom")}
    with torch.no_grad():
        for i in range(len(test)):
            true = test.fields[i].double()  # (T, C, H, W)
            u = norm.normalise_params(test.params[i : i + 1].double()).float()
            s = model.rollout(u, true.shape[0])[0]  # (T, d_s)
            pred = torch.cat([model.reconstruct(c, coords) for c in s.split(4)])  # (T, P, C)
            pred = norm.denormalise_fields(pred.double(), -1).transpose(1, 2)
            pred = pred.reshape(true.shape)
            dist = (((test.params[i] - lo) / (hi - lo) - scaled) ** 2).sum(1)
            near = train.fields[int(dist.argmin())].double()
            for key, x in (("err", pred), ("clim", clim), ("near", near)):
                sums[key] += ((x - true) ** 2).sum((0, 2, 3))
            sums["x"] += (true**2).sum((0, 2, 3))
            sums["anom"] += ((true - clim) ** 2).sum((0, 2, 3))
    names = [str(c) for c in ds["channel"].values]
    rows = {}
    print(f"{len(test)} test trajectories, {test.fields.shape[1]} frames, all grid points")
    print(f"{'channel':10s} {'model':>18s} {'climatology':>18s} {'nearest-param':>18s}")
    for c, name in enumerate(names):
        row = {
            key: {
                "rel": float((sums[key][c] / sums["x"][c]).sqrt()),
                "anomaly": float((sums[key][c] / sums["anom"][c]).sqrt()),
            }
            for key in ("err", "clim", "near")
        }
        rows[name] = row
        cells = " ".join(f"{row[k]['rel']:8.4f}/{row[k]['anomaly']:.3f}" for k in row)
        print(f"{name:10s} {cells}   (rel / anomaly)")
    save("ldnet-channels", {"data": str(a.data), "ldnet": str(a.ldnet), "channels": rows})


if __name__ == "__main__":
    main()
