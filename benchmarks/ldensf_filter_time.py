"""LD-EnSF's filter time per trajectory (issue 5: <= 0.35 s for N = 20, K = 100, every frame).

For each ``--systems`` entry, reads the committed ``latentda benchmark`` run
(``benchmarks/runs/<system>-<size>/results.json``: its surrogates, test trajectories and the
knobs LD-EnSF was tuned to in ``--setting``), then times :meth:`LDEnSF.assimilate` alone
(forecast and analysis, no reconstruction, no scoring) on those test trajectories with the
benchmark's readings, for each ``--threads`` count. Prints per system and thread count the
mean and max of the filter time per trajectory (encoder plus EnSF analyses, as booked in the
benchmark's Table 2), the time per analysis and the dynamics time; the machine's load before
each system is in the result file (``busy_cores``, other processes' cores in use).

The store is generated if missing (as ``latentda benchmark`` would, same path and seed).
Usage::

    .venv/bin/python benchmarks/ldensf_filter_time.py [--systems kolmogorov tsunami sphere] \\
        [--threads 1 2] [--setting paper] [--max-wait 600]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import torch

from _common import bench_setting, fail, save, wait_until_idle
from latentda.errors import ConfigError
from latentda.experiments.field_config import MethodContext
from latentda.experiments.threads import torch_threads
from latentda.experiments.twin import stream

HERE = Path(__file__).resolve().parent


def time_system(system: str, args: argparse.Namespace) -> dict[str, Any]:
    """Filter timings of LD-EnSF on ``system``'s benchmark test trajectories."""
    results = args.runs / f"{system}-{args.size}" / "results.json"
    if not results.exists():
        fail(f"no benchmark run at {results}: run `latentda benchmark` first")
    run = json.loads(results.read_text())
    if args.setting not in run["artefacts"]:
        fail(f"{results} has no setting {args.setting!r}")
    cfg, ds, normaliser, setting = bench_setting(
        system, args.size, args.setting, args.cache, generate=True
    )
    dirs = {k: Path(a["directory"]) for k, a in run["artefacts"][args.setting].items()}
    knobs = run["settings"][args.setting]["methods"]["ldensf"]["knobs"]
    method = cfg.method("ldensf", **knobs).build(MethodContext(ds, normaliser, dirs))
    seed = run["test"]["seeds"][0]
    cases = [setting.case("test", p, seed) for p in run["test"]["positions"]]
    load = wait_until_idle(max_wait=args.max_wait)
    out: dict[str, Any] = {"knobs": knobs, "load": load, "threads": {}}
    for threads in args.threads:
        rows = []
        with torch_threads(threads):
            method.filter.assimilate(  # untimed: first-call allocations
                method.surrogate, cases[0].readings, stream(seed, "filter"), cases[0].points
            )
            for case in cases:
                res = method.filter.assimilate(
                    method.surrogate, case.readings, stream(case.seed, "filter"), case.points
                )
                n = int(res.analysed.sum())
                rows.append({**res.timings, "analyses": n, "frames": case.n_frames})
        filt = [r["filter_s"] for r in rows]
        per = [r["filter_s"] / r["analyses"] for r in rows]
        summary = {
            "filter_s_mean": statistics.fmean(filt),
            "filter_s_max": max(filt),
            "ms_per_analysis": 1e3 * statistics.fmean(per),
            "dynamics_s_mean": statistics.fmean(r["dynamics_s"] for r in rows),
            "trajectories": len(rows),
            "frames": rows[0]["frames"],
            "analyses": rows[0]["analyses"],
            "latent_dim": method.surrogate.state_dim,
        }
        out["threads"][str(threads)] = {"summary": summary, "runs": rows}
        print(
            f"{system:10s} threads {threads}: filter {summary['filter_s_mean']:.3f} s mean, "
            f"{summary['filter_s_max']:.3f} s max per trajectory ({len(rows)} trajectories, "
            f"{summary['analyses']} analyses of d = {summary['latent_dim']}: "
            f"{summary['ms_per_analysis']:.2f} ms each); dynamics "
            f"{summary['dynamics_s_mean']:.3f} s; other load {load['busy_cores']:.2f} cores"
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--systems", nargs="+", default=["kolmogorov", "tsunami", "sphere"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--setting", default="paper")
    p.add_argument("--size", default="bench")
    p.add_argument("--runs", type=Path, default=HERE / "runs")
    p.add_argument("--cache", type=Path, default=HERE / "cache")
    p.add_argument(
        "--max-wait", type=float, default=600.0, help="s to wait for an idle machine per system"
    )
    args = p.parse_args()
    if min(args.threads) < 1:
        p.error("--threads must be >= 1")
    try:
        results = {s: time_system(s, args) for s in args.systems}
    except ConfigError as exc:  # an unknown system or size
        p.error(str(exc))
    save("ldensf_filter_time", {"args": {k: str(v) for k, v in vars(args).items()}, **results})


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
