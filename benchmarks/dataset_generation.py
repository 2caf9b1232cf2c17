"""Time to generate each ``bench`` dataset through the real CLI (``latentda simulate``).

For every system: ``latentda simulate --system S --size bench --trajectories N --batch B
--out TMP/S.zarr --no-progress`` in a fresh temporary directory, timed from launch to exit
(Python start-up, store creation, simulation and writing included), then the store is opened
(``open_dataset``, which refuses incomplete stores) and checked finite. With ``N`` below the
issue's 200 the time for 200 is extrapolated linearly (``wall × 200 / N``, whole batches only,
start-up included, so slightly pessimistic) and labelled so. Each command starts only once other
processes keep fewer than 0.3 cores busy (waiting up to 10 min: the machine is shared); the
reading is recorded, but load arriving during a run is not excluded.

Usage::

    .venv/bin/python benchmarks/dataset_generation.py [--systems kolmogorov tsunami sphere]
        [--trajectories 200] [--sphere-trajectories 40] [--batch S=B ...] [--threads T]
        [--ranks R] [--set sphere:courant=0.7 ...]

``--ranks R`` launches the same command under ``torchrun --standalone --nproc_per_node=R``
(rank-sharded generation, each rank writing its own trajectories into the one store); use it
with ``--threads 1`` to give each rank one core.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import save, wait_until_idle

SYSTEMS = ("kolmogorov", "tsunami", "sphere")
#: Trajectories simulated together per system (a divisor of 200).
BATCH = {"kolmogorov": 25, "tsunami": 50, "sphere": 20}
FULL = 200
TARGET_S = 600.0


def latentda_command() -> list[str]:
    exe = Path(sys.executable).with_name("latentda")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "latentda"]


def one(
    system: str, trajectories: int, batch: int, threads: int, ranks: int, options: list[str]
) -> dict[str, Any]:
    import numpy as np

    from latentda.data.store import open_dataset

    env = dict(os.environ)
    if threads > 0:
        env["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory(prefix=f"latentda-{system}-") as tmp:
        out = Path(tmp) / f"{system}.zarr"
        launcher = latentda_command()
        if ranks > 1:
            # Rank-sharded generation (DESIGN section 9): each rank writes its own share.
            torchrun = Path(sys.executable).with_name("torchrun")
            launcher = [str(torchrun), "--standalone", f"--nproc_per_node={ranks}"]
            launcher += [str(Path(sys.executable).with_name("latentda"))]
        cmd = launcher + ["simulate", "--system", system, "--size", "bench"]
        cmd += ["--trajectories", str(trajectories), "--batch", str(batch)]
        cmd += ["--out", str(out), "--no-progress"]
        for option in options:
            cmd += ["--set", option]
        idle = wait_until_idle(max_wait=600.0)
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - t0
        load1 = os.getloadavg()
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
        ds = open_dataset(out)
        fields = ds["fields"]
        finite = bool(np.isfinite(fields.values).all())
        shape = tuple(int(s) for s in fields.shape)
        size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    full = wall * FULL / trajectories
    return {
        "system": system,
        "command": " ".join(cmd),
        "ranks": ranks,
        "set": options,
        "omp_num_threads": threads or None,
        "trajectories": trajectories,
        "batch": batch,
        "wall_s": wall,
        "s_per_trajectory": wall / trajectories,
        "time_for_200_s": full,
        "extrapolated": trajectories < FULL,
        "fields_shape": shape,
        "finite": finite,
        "store_mb": size_mb,
        "idle_check": idle,
        "loadavg_before": load0,
        "loadavg_after": load1,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    p.add_argument("--trajectories", type=int, default=FULL)
    p.add_argument(
        "--sphere-trajectories",
        type=int,
        default=None,
        help="trajectories for the sphere (default: --trajectories)",
    )
    p.add_argument("--batch", nargs="*", default=[], metavar="S=B", help="e.g. sphere=40")
    p.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS (0: torch default)")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="S:KEY=VALUE",
        help="system option passed on as --set KEY=VALUE, e.g. sphere:courant=0.7",
    )
    p.add_argument(
        "--ranks", type=int, default=1, help="processes under torchrun (1: plain CLI process)"
    )
    args = p.parse_args()
    batch = dict(BATCH)
    for item in args.batch:
        name, _, value = item.partition("=")
        if name not in SYSTEMS or not value.isdigit():
            raise SystemExit(f"--batch takes SYSTEM=N, got {item!r}")
        batch[name] = int(value)

    rows = []
    for system in args.systems:
        n = args.trajectories
        if system == "sphere" and args.sphere_trajectories is not None:
            n = args.sphere_trajectories
        b = min(batch[system], n)
        print(f"  {system}: {n} trajectories, batch {b} ...", file=sys.stderr, flush=True)
        options = [o.split(":", 1)[1] for o in args.set if o.startswith(f"{system}:")]
        r = one(system, n, b, args.threads, args.ranks, options)
        rows.append(r)
        print(f"  {system}: {r['wall_s']:.1f} s", file=sys.stderr, flush=True)

    how = f"{args.ranks} torchrun ranks" if args.ranks > 1 else "one process"
    threads = f"OMP_NUM_THREADS={args.threads}" if args.threads else "default threads"
    print(
        "\n`latentda simulate --size bench` wall time (launch to exit), fresh store, "
        f"{how}, {threads}"
    )
    print(
        "\n| system | trajectories run | batch | wall s | s per trajectory | "
        "time for 200 | target < 600 s |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        full = f"{r['time_for_200_s']:.0f} s"
        if r["extrapolated"]:
            full += f" (extrapolated from {r['trajectories']})"
        ok = "met" if r["time_for_200_s"] < TARGET_S else "missed"
        if r["extrapolated"]:
            ok += " (extrapolated)"
        label = r["system"] + "".join(f" `{o}`" for o in r["set"])
        print(
            f"| {label} | {r['trajectories']} | {r['batch']} | {r['wall_s']:.1f} | "
            f"{r['s_per_trajectory']:.2f} | {full} | {ok} |"
        )
    tag = "".join("_" + o.replace(":", "-").replace("=", "") for o in args.set)
    tag += f"_ranks{args.ranks}" if args.ranks > 1 else ""
    tag += f"_n{args.trajectories}" if args.trajectories != FULL else ""
    name = "dataset_generation_" + "_".join(args.systems) + tag
    print(f"\nwritten {save(name, {'rows': rows})}")


if __name__ == "__main__":
    main()
