"""Surrogate benchmark (issue 4): LDNet accuracy and training time, latent vs full-order speed,
and observation encoders, on one system, every model trained through the real CLI.

Steps (each reuses what an earlier run produced: datasets and trained models are resumable):

1. ``latentda simulate`` the dataset (``--trajectories``, 60/20/20 split) into ``--work``;
2. ``latentda train ldnet`` for each variant: ``fixed`` (the default Fourier matrix),
   ``trainable`` (trainable Fourier matrix), ``learned`` (learned initial latent, on a
   Kolmogorov dataset with random initial conditions); stage 1 and stage 2 test scores come
   from the same run;
3. speed: 20 members over all frames, LDNet latent rollout against the full-order solver, same
   process and device, best of ``--repeats``;
4. ``latentda train encoder`` in both modes (10×10 sensors, 10 % noise), test errors of
   (ŝ, û).

Usage::

    .venv/bin/python benchmarks/surrogates.py --system kolmogorov --size bench \\
        [--trajectories 200] [--variants fixed trainable learned] [--epochs1 300 --epochs2 100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from _common import save

ROOT = Path(__file__).resolve().parents[1]
CLI = [str(Path(sys.executable).parent / "latentda")]
LATENT_DIM = {"kolmogorov": 9, "tsunami": 10, "sphere": 50}
PAPER = {  # LD-EnSF paper, Table 1: VAE / VAE-dyn / LDNet relative RMSE
    "kolmogorov": (0.0131, 0.964, 0.0123),
    "tsunami": (0.0309, 1.33, 0.0168),
    "sphere": (0.0856, 0.483, 0.0656),
}


def sh(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def dataset(work: Path, system: str, size: str, n: int, extra: list[str]) -> Path:
    tag = "-".join([system, size, str(n), *[e.replace("=", "") for e in extra[1::2]]])
    path = work / f"{tag}.zarr"
    sets = [a for e in extra[1::2] for a in ("--set", e)]
    sh(
        *CLI,
        "simulate",
        "--system",
        system,
        "--size",
        size,
        "--trajectories",
        str(n),
        "--batch",
        "8",
        "--out",
        str(path),
        "--no-progress",
        *sets,
    )
    return path


def train_ldnet(
    data: Path, out: Path, system: str, args: argparse.Namespace, extra: list[str]
) -> dict:
    sets = [
        "--set",
        f"model.latent_dim={LATENT_DIM[system]}",
        "--set",
        f"stage1.epochs={args.epochs1}",
        "--set",
        f"stage2.epochs={args.epochs2}",
        *[a for e in extra for a in ("--set", e)],
    ]
    sh(*CLI, "train", "ldnet", "--data", str(data), "--out", str(out), "--no-progress", *sets)
    return json.loads((out / "metrics.json").read_text())


def speed(data: Path, ldnet_dir: Path, repeats: int) -> dict:
    """Seconds for 20 members over all frames: latent rollout vs the full-order solver."""
    from latentda.data import open_dataset
    from latentda.data.splits import dataset_info, load_split
    from latentda.surrogates.train_ldnet import load_ldnet
    from latentda.systems.registry import system_from_config

    ds = open_dataset(data)
    info = dataset_info(ds)
    test = load_split(ds, "test")
    run = load_ldnet(ldnet_dir, ds)
    system = system_from_config(info["system"])
    idx = torch.arange(20) % len(test)
    u = test.params[idx]
    x0 = test.fields[idx, 0].double()
    un = run.normaliser.normalise_params(u).float()
    n_frames = info["shape"][0]

    def best(fn) -> float:  # noqa: ANN001
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    def full() -> None:
        x, t = x0, system.spinup_time
        for _ in range(n_frames - 1):
            x = system.step(x, u, system.frame_dt, t)
            t += system.frame_dt

    with torch.no_grad():
        latent = best(lambda: run.model.rollout(un, n_frames))
    full_s = best(full) if repeats else float("nan")
    return {
        "members": 20,
        "frames": n_frames,
        "latent_s": latent,
        "full_order_s": full_s,
        "speedup": full_s / latent,
    }


def train_encoder(data: Path, ldnet_dir: Path, out: Path, mode: str, epochs: int) -> dict:
    sh(
        *CLI,
        "train",
        "encoder",
        "--data",
        str(data),
        "--ldnet",
        str(ldnet_dir),
        "--out",
        str(out),
        "--no-progress",
        "--set",
        f"model.mode={mode}",
        "--set",
        f"stage.epochs={epochs}",
    )
    return json.loads((out / "metrics.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--system", default="kolmogorov", choices=sorted(LATENT_DIM))
    p.add_argument("--size", default="bench")
    p.add_argument("--trajectories", type=int, default=200)
    p.add_argument("--variants", nargs="*", default=["fixed", "trainable", "learned"])
    p.add_argument("--epochs1", type=int, default=300)
    p.add_argument("--epochs2", type=int, default=100)
    p.add_argument("--encoder-epochs", type=int, default=200)
    p.add_argument("--no-encoders", action="store_true")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "data")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    runs = args.work / "runs"
    tag = f"{args.system}-{args.size}-{args.trajectories}"
    data = dataset(args.work, args.system, args.size, args.trajectories, [])
    results: dict = {
        "system": args.system,
        "size": args.size,
        "trajectories": args.trajectories,
        "epochs": [args.epochs1, args.epochs2],
        "ldnet": {},
        "encoders": {},
    }
    for variant in args.variants:
        extra, source = [], data
        if variant == "trainable":
            extra = ["model.trainable_fourier=true"]
        elif variant == "learned":
            if args.system != "kolmogorov":
                continue
            source = dataset(
                args.work, args.system, args.size, args.trajectories, ["--set", "init=random"]
            )
            extra = ["model.initial=learned"]
        results["ldnet"][variant] = train_ldnet(
            source, runs / f"{tag}-ldnet-{variant}", args.system, args, extra
        )
    base = runs / f"{tag}-ldnet-{args.variants[0]}"
    results["speed"] = speed(data, base, args.repeats)
    if not args.no_encoders:
        for mode in ("fixed", "location"):
            results["encoders"][mode] = train_encoder(
                data, base, runs / f"{tag}-encoder-{mode}", mode, args.encoder_epochs
            )
    path = save(f"surrogates-{tag}", results)

    vae, dyn, ld = PAPER[args.system]
    print(
        f"\n## {args.system} at {args.size} ({args.trajectories} trajectories; test split "
        f"{next(iter(results['ldnet'].values()))['averaged_over']['trajectories']})"
    )
    print(
        "| LDNet variant | test rel RMSE stage 1 | stage 2 | train s | epochs s1/s2 | "
        f"params | paper LDNet {ld} |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, m in results["ldnet"].items():
        print(
            f"| {name} | {m['test_rel_rmse_stage1']:.4f} | {m['test_rel_rmse']:.4f} | "
            f"{m['train_time_s']:.0f} | {m['stage1']['epochs']}/{m['stage2']['epochs']} | "
            f"{m['parameters']} | |"
        )
    s = results["speed"]
    print(
        f"\nspeed, {s['members']} members x {s['frames']} frames: latent {s['latent_s']:.4f} s,"
        f" full order {s['full_order_s']:.2f} s, ratio {s['speedup']:.0f}x"
    )
    for mode, m in results["encoders"].items():
        print(
            f"encoder {mode}: latent rel {m['latent_rel_error']:.4f} (final "
            f"{m['latent_rel_error_final']:.4f}), param rel {m['param_rel_error']:.4f} (final "
            f"{m['param_rel_error_final']:.4f}), {m['train_time_s']:.0f} s"
        )
    print(f"-> {path}")


if __name__ == "__main__":
    main()
