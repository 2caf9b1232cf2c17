"""LDNet stage-1 sweep at equal compute: which CPU training settings learn fastest?

Trains stage 1 only (the real :class:`ReconstructionLoss` and :func:`train_stage`) for a fixed
number of epochs on a stored dataset and prints the training loss and the validation relative
RMSE (1024 fixed random points, all validation trajectories and frames) every 10 epochs.
``--single`` instead fits the reconstruction alone to one frame (trajectory 0, frame 0, all
grid points, free latent), to separate the decoder's capacity from the dynamics.

Usage::

    .venv/bin/python benchmarks/ldnet_sweep.py --data D.zarr --epochs 40 --batch 2 --lr 1e-2 \\
        --scale 3 [--no-periodic] [--no-clock] [--precision bfloat16] [--width 128 --blocks 4]
        [--threads 1]
    .venv/bin/python benchmarks/ldnet_sweep.py --data D.zarr --single --scale 3 --steps 2000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor

from _common import save
from latentda.data import open_dataset
from latentda.data.splits import (
    dataset_info,
    forcing_clock,
    grid_coords,
    load_split,
    normaliser_for,
    unit_periods,
)
from latentda.surrogates.ldnet import ForcingClock, LDNet, LDNetConfig
from latentda.surrogates.train_ldnet import PreparedSplit, ReconstructionLoss, evaluate
from latentda.surrogates.training import StageConfig, flush_denormals, train_stage


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--points", type=int, default=256)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--latent", type=int, default=9)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--scale", type=float, default=2.0)
    p.add_argument("--no-periodic", action="store_true")
    p.add_argument("--no-clock", action="store_true", help="autonomous F (no forcing phase)")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--single", action="store_true")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    ds = open_dataset(a.data)
    splits = {s: load_split(ds, s) for s in ("train", "val")}
    norm = normaliser_for(ds, splits["train"])
    data = {s: PreparedSplit.build(v, norm) for s, v in splits.items()}
    coords = grid_coords(ds)
    n_train, n_channels = data["train"].fields.shape[0], data["train"].fields.shape[2]
    config = LDNetConfig(
        latent_dim=a.latent,
        recon_width=a.width,
        recon_blocks=a.blocks,
        fourier_features=a.features,
        fourier_scale=a.scale,
        periodic_features=not a.no_periodic,
        forcing_inputs=not a.no_clock,
    )
    clock = ForcingClock(*forcing_clock(dataset_info(ds)))
    model = LDNet(
        config, data["train"].u.shape[1], n_channels, 2, periods=unit_periods(ds), clock=clock
    )
    t0 = time.perf_counter()
    if a.single:
        history = fit_single_frame(model, data["train"].fields[0, :1], coords, a.lr, a.steps)
    else:
        val_idx = torch.randperm(coords.shape[0], generator=torch.Generator().manual_seed(7))
        val_idx = val_idx[:1024]
        stage = StageConfig(
            epochs=a.epochs,
            batch_size=a.batch,
            points=a.points,
            frames=a.frames,
            lr=a.lr,
            eval_every=10,
            patience=0,
            precision=a.precision,
        )

        def val() -> float:
            return float(evaluate(model, data["val"], coords, norm, 0, val_idx).mean())

        objective = ReconstructionLoss(model, data["train"], coords, stage, val)
        with tempfile.TemporaryDirectory() as tmp:
            result = train_stage(
                objective, list(model.parameters()), n_train, stage, 0, Path(tmp), "s1", {}, False
            )
        history = [
            {"epoch": r["epoch"], "train_mse": r["train_loss"], "val_rel_rmse": r["val"]}
            for r in result.history
            if "val" in r
        ]
    seconds = time.perf_counter() - t0
    for h in history:
        print(" ".join(f"{k}={v:.4g}" for k, v in h.items()))
    print(f"{seconds:.0f} s")
    tag = "single" if a.single else "stage1"
    save(f"ldnet-sweep-{tag}", {"args": {**vars(a), "data": str(a.data)}, "history": history})


@flush_denormals()
def fit_single_frame(
    model: LDNet, frame: Tensor, coords: Tensor, lr: float, steps: int
) -> list[dict[str, float]]:
    """Adam on ``R(s, ξ)`` and a free latent ``s`` against one normalised frame ``(1, C, P)``
    at all grid points; the MSE every 500 steps."""
    latent = torch.nn.Parameter(torch.zeros(1, model.config.latent_dim))
    opt = torch.optim.Adam([*model.reconstruction_parameters(), latent], lr)
    out = []
    for step in range(1, steps + 1):
        loss = ((model.reconstruct(latent, coords).transpose(1, 2) - frame) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0:
            out.append({"step": step, "train_mse": float(loss.detach())})
    return out


if __name__ == "__main__":
    main()
