"""EnSF scaling in the state dimension: one analysis at d = 10^3 .. 10^6, N = 20, K = 100.

Each size runs in a fresh subprocess so that its peak resident memory (``ru_maxrss``) is its
own; the table reports wall time of the analysis and peak RSS above the interpreter + torch
baseline. Observations: every variable, H = I, noise 1 (the likelihood term is then as dense
as it can be).

Usage::

    .venv/bin/python benchmarks/ensf_scaling.py [--dims 1000 10000 100000 1000000]
        [--dtype float32|float64] [--prior-score member|mixture|gaussian]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from _common import save


def one(d: int, dtype: str, prior_score: str, threads: int) -> dict:
    import torch

    from latentda.filters import EnSF, make_prior_score
    from latentda.observations import Identity, Observer

    torch.set_num_threads(threads)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    g = torch.Generator().manual_seed(0)
    dt = getattr(torch, dtype)
    prior = torch.randn(20, d, generator=g, dtype=dt)
    y = torch.randn(d, generator=g, dtype=dt)
    observer = Observer(Identity(d), 1.0)
    ensf = EnSF(steps=100, prior_score=make_prior_score(prior_score))
    t0 = time.perf_counter()
    post = ensf.analysis(prior, y, observer, g)
    wall = time.perf_counter() - t0
    assert bool(torch.isfinite(post).all())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "d": d,
        "wall_s": wall,
        "peak_mb": (peak - base) / 1024,
        "ensemble_mb": prior.element_size() * prior.numel() / 2**20,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", type=int, nargs="+", default=[1000, 10000, 100000, 1000000])
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--prior-score", default="member", choices=["member", "mixture", "gaussian"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(one(args.child, args.dtype, args.prior_score, args.threads)))
        return
    rows = []
    for d in args.dims:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            str(d),
            "--dtype",
            args.dtype,
            "--prior-score",
            args.prior_score,
            "--threads",
            str(args.threads),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"  d={d:>8d}  {r['wall_s']:.2f} s  peak +{r['peak_mb']:.0f} MB", file=sys.stderr)
    print(
        f"\nEnSF, one analysis, N = 20, K = 100, {args.dtype}, {args.prior_score} prior score, "
        f"{args.threads} threads"
    )
    print("| d | wall s | s per 10^5 variables | peak RSS above baseline MB | ensemble MB |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['d']:,} | {r['wall_s']:.2f} | {r['wall_s'] / r['d'] * 1e5:.2f} | "
            f"{r['peak_mb']:.0f} | {r['ensemble_mb']:.1f} |"
        )
    print(f"\nwritten {save(f'ensf_scaling_{args.dtype}_{args.prior_score}', {'rows': rows})}")


if __name__ == "__main__":
    main()
