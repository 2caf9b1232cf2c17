"""Does full-state 4DEnVar's Gauss–Newton converge? The window cost along its iterations.

Runs the benchmark's ``4denvar`` (``latentda benchmark`` at ``--size``, the paper setting's
sensors and noise) on the first ``--frames`` frames of one validation trajectory and prints,
per window, the cost ``J = ½‖w‖² + ½Σ_k‖δ_k‖²`` at the iterate each Gauss–Newton step
started from (``δ_k`` from the run's ensemble mean), the steps' norms ``‖Δw‖`` (and a
member start's jump apart) and the window's wall time; then the time-mean relative RMSE
over those frames. Each iteration is one ensemble run of the solver through the window,
so iterations that do not lower ``J`` are pure cost. Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/envar_iterations.py --system sphere \\
        [--cache benchmarks/cache] [--frames 9] [--iterations 10] \\
        [--window 4] [--inflation 1.0] [--position 0] [--set adaptive_inflation=false]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from _common import bench_setting, save
from latentda.experiments.config import parse_overrides
from latentda.experiments.field_config import MethodContext
from latentda.experiments.field_twin import run_method
from latentda.filters.envar import FourDEnVar, WindowAnalysis


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--system", required=True)
    p.add_argument(
        "--cache",
        type=Path,
        default=Path(__file__).resolve().parent / "cache",
        help="the benchmark's cache, whose store of --system at --size is read",
    )
    p.add_argument("--size", default="bench")
    p.add_argument("--frames", type=int, default=9)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--window", type=int, default=4)
    p.add_argument("--inflation", type=float, default=1.0)
    p.add_argument("--position", type=int, default=0, help="validation trajectory")
    p.add_argument(
        "--set", action="append", default=[], help="another 4denvar knob, e.g. member_starts=false"
    )
    args = p.parse_args()
    torch.set_num_threads(1)

    cfg, ds, normaliser, setting = bench_setting(
        args.system, args.size, "paper", args.cache, generate=False
    )
    case = setting.case("val", args.position, cfg.seeds[0])
    case = dataclasses.replace(
        case, truth=case.truth[: args.frames], readings=case.readings[: args.frames]
    )
    knobs = {"window": args.window, "inflation": args.inflation, "iterations": args.iterations}
    knobs.update(parse_overrides(args.set))
    method = cfg.method("4denvar", **knobs).build(MethodContext(ds, normaliser, {}))
    windows: list[tuple[WindowAnalysis, float]] = []

    class Recording(FourDEnVar):
        def analyse(self, *a: Any, **k: Any) -> WindowAnalysis:
            t0 = time.perf_counter()
            res = super().analyse(*a, **k)
            windows.append((res, time.perf_counter() - t0))
            return res

    fields = {f.name: getattr(method.smoother, f.name) for f in dataclasses.fields(FourDEnVar)}
    method = dataclasses.replace(method, smoother=Recording(**fields))
    result = run_method(method, case)
    rows = []
    for i, (res, seconds) in enumerate(windows):
        jump = res.step_norms[: len(res.step_norms) - len(res.costs)]  # a member start's
        steps = res.step_norms[len(jump) :]
        start = f", member start |dw| {jump[0]:.3g}" if jump else ""
        print(f"window {i + 1}: {res.iterations} Gauss-Newton steps{start}, {seconds:.1f} s")
        print("  J     " + " ".join(f"{c:.0f}" for c in res.costs))
        print("  |dw|  " + " ".join(f"{s:.3g}" for s in steps))
        rows.append({"costs": list(res.costs), "step_norms": list(res.step_norms), "s": seconds})
    rel = result.time_means()["rel_rmse"]
    print(f"time-mean rel RMSE over {case.n_frames} frames: {rel:.4g}")
    save(
        "envar_iterations",
        {"args": {k: str(v) for k, v in vars(args).items()}, "windows": rows, "rel_rmse": rel},
    )


if __name__ == "__main__":
    main()
