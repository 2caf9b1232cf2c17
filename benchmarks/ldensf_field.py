"""LD-EnSF on stored test trajectories of a field system (issue 5, before `latentda benchmark`).

Runs :func:`latentda.experiments.field_twin.run_ldensf` with trained checkpoints on the first
``--trajectories`` test trajectories, with and without assimilation (the same prior ensemble),
and prints time-mean and final-frame scores (mean ± std over trajectories) and the split
timings per trajectory.

Usage::

    .venv/bin/python benchmarks/ldensf_field.py --data D.zarr --ldnet DIR --encoder DIR2 \\
        [--trajectories 10] [--noise 0.1] [--every 1] [--members 20] [--scale 7] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from _common import save
from latentda.data import open_dataset
from latentda.experiments.field_twin import FieldTwinResult, run_ldensf
from latentda.filters.latent_analysis import ScoreAnalysis, ldensf_ensf
from latentda.filters.ldensf import LatentSurrogate, LDEnSF

KEYS = ("rel_rmse", "crps", "coverage90", "param_rel_error")


def summary(runs: list[FieldTwinResult]) -> dict[str, dict[str, float]]:
    """Mean and std over trajectories of the time-mean and final-frame scores."""
    out: dict[str, dict[str, float]] = {}
    for when, pick in (("mean", FieldTwinResult.time_means), ("final", FieldTwinResult.final)):
        for key in KEYS:
            values = torch.tensor([pick(r)[key] for r in runs])
            out[f"{key}_{when}"] = {"mean": float(values.mean()), "std": float(values.std())}
    for key in runs[0].timings:
        out[key] = {"mean": sum(r.timings[key] for r in runs) / len(runs), "std": float("nan")}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--ldnet", type=Path, required=True)
    p.add_argument("--encoder", type=Path, required=True)
    p.add_argument("--trajectories", type=int, default=10)
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument("--every", type=int, default=1)
    p.add_argument("--members", type=int, default=20)
    p.add_argument("--scale", type=float, default=7.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    ds = open_dataset(a.data)
    surrogate = LatentSurrogate.load(a.ldnet, a.encoder, ds)
    filt = LDEnSF(a.members, analysis=ScoreAnalysis(ldensf_ensf(scaling=a.scale)))
    results = {}
    for name, assimilate in (("ldensf", True), ("no_assimilation", False)):
        runs = [
            run_ldensf(surrogate, ds, i, filt, a.noise, a.every, 0.0, a.seed, assimilate)
            for i in range(a.trajectories)
        ]
        results[name] = summary(runs)
    path = save(
        f"ldensf-field-{Path(a.data).stem}",
        {"args": {k: str(v) for k, v in vars(a).items()}, "results": results},
    )
    print(f"{a.trajectories} test trajectories, seed {a.seed}, N = {a.members}, noise {a.noise}")
    print("| run | " + " | ".join(f"{k} mean / final" for k in KEYS) + " |")
    print("|---|" + "---|" * len(KEYS))
    for name, r in results.items():
        cells = [
            f"{r[f'{k}_mean']['mean']:.4f} / {r[f'{k}_final']['mean']:.4f}"
            f" (±{r[f'{k}_final']['std']:.3f})"
            for k in KEYS
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    t = results["ldensf"]
    print(
        "per trajectory: "
        + ", ".join(f"{k} {v['mean']:.3f} s" for k, v in t.items() if k.endswith("_s"))
    )
    print(f"-> {path}")


if __name__ == "__main__":
    main()
