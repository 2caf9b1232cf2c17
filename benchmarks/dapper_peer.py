"""Peer benchmark: DAPPER on Lorenz-96 "sakov2008" (run by the DAPPER venv's python).

This script is standalone: it imports DAPPER (see ``dapper_venv.sh``) and never latentda,
so latentda does not depend on DAPPER. Usage::

    PY="$(bash benchmarks/dapper_venv.sh | tail -n 1)"
    "$PY" benchmarks/dapper_peer.py [--seed 3] [--methods etkf,letkf40,...] [--json-only]

Setting (DAPPER 1.7.1, ``dapper.mods.Lorenz96.sakov2008``): d = 40, F = 8, dt = 0.05 with
one RK4 step per cycle (dko = 1), H = I, R = I, X0 = N(e_1, 0.001 I) for truth and ensemble
alike. The first observation is at k = 1 (DAPPER never observes t = 0). For every method the
script prints one JSON line with the time means over the analysis times t > BurnIn
(DAPPER's ``avrgs.err.rms.a`` etc.) and the wall time of ``xp.assimilate`` alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

# No figures, no tqdm bars. DAPPER prints a liveplotting warning to stdout at import time
# under a non-interactive backend: send it to stderr so that stdout holds only JSON lines.
os.environ.setdefault("MPLBACKEND", "Agg")
with contextlib.redirect_stdout(sys.stderr):
    import dapper
    import dapper.tools.progressbar as dpr_progressbar
    from dapper.da_methods import LETKF, EnKF
    from dapper.dpr_config import rc
    from dapper.mods import Chronology
    from dapper.mods.Lorenz96 import Tplot
    from dapper.mods.Lorenz96.sakov2008 import HMM
    from dapper.tools.seeding import set_seed

rc.liveplotting = False
dpr_progressbar.disable_progbar = True

# sakov2008 in DAPPER 1.7.1 defines
#     tseq = Chronology(0.05, dko=1, Ko=1000, Tplot=Tplot, BurnIn=2 * Tplot)
# i.e. Ko + 1 = 1001 observation cycles (K = 1001, T = 50.05) and BurnIn = 20.
# Changed here: K = 1000 (so 1000 cycles, kko = 1..1000, T = 50), BurnIn kept at 20 time units.
# DAPPER averages over t > BurnIn (strict), i.e. over cycles k = 401..1000 (600 analyses).
N_CYCLES = 1000
DT = 0.05
BURN_IN = 20.0

# key -> (constructor, kwargs); the index in this table also fixes each method's own seed.
METHODS: dict[str, tuple[type, dict]] = {
    "etkf24": (EnKF, dict(upd_a="Sqrt", N=24, infl=1.013, rot=True)),
    "letkf40": (LETKF, dict(N=40, infl=1.02, rot=True, loc_rad=4)),
    "letkf20": (LETKF, dict(N=20, infl=1.04, rot=True, loc_rad=4)),
    "enkf_pertobs40": (EnKF, dict(upd_a="PertObs", N=40, infl=1.06)),
}


def method_label(cls: type, kw: dict) -> str:
    if cls is EnKF:
        return f"EnKF-{kw['upd_a']}"
    return cls.__name__


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=3, help="truth/obs seed (default 3)")
    p.add_argument(
        "--methods",
        default="all",
        help=f"comma-separated subset of {','.join(METHODS)} (default all)",
    )
    p.add_argument("--json-only", action="store_true", help="print only the JSON lines")
    args = p.parse_args(argv)
    if args.seed == 0:
        p.error("DAPPER refuses seed 0")
    keys = list(METHODS) if args.methods == "all" else args.methods.split(",")
    unknown = [k for k in keys if k not in METHODS]
    if unknown:
        p.error(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    args.keys = keys
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def info(msg: str) -> None:
        if not args.json_only:
            print(msg, file=sys.stderr)

    HMM.tseq = Chronology(DT, dko=1, K=N_CYCLES, Tplot=Tplot, BurnIn=BURN_IN)
    tseq = HMM.tseq
    assert tseq.Ko + 1 == N_CYCLES and tseq.kko[0] == 1
    n_avg = int(tseq.masko.sum())
    info(
        f"dapper {dapper.__version__}: K={tseq.K} Ko+1={tseq.Ko + 1} T={tseq.T:g} "
        f"BurnIn={tseq.BurnIn:g} -> time means over {n_avg} analyses"
    )

    set_seed(args.seed)
    xx, yy = HMM.simulate()  # shared by all methods

    for key in args.keys:
        cls, kw = METHODS[key]
        xp = cls(**kw)
        # Seed of the filter's own randomness (X0 draw, rotations, obs perturbations):
        # independent of which methods were selected and in which order.
        set_seed(args.seed * 100 + 1 + list(METHODS).index(key))
        t0 = time.perf_counter()
        xp.assimilate(HMM, xx, yy, liveplots=False)
        wall = time.perf_counter() - t0
        xp.stats.average_in_time()
        av = xp.avrgs
        rec = {
            "method": method_label(cls, kw),
            "key": key,
            "N": kw["N"],
            "infl": kw["infl"],
            "loc_rad": kw.get("loc_rad"),
            "rot": kw.get("rot", False),
            "rmse_a": float(av.err.rms.a.val),
            "rmse_f": float(av.err.rms.f.val),
            "spread_a": float(av.spread.rms.a.val),
            "wall_s": round(wall, 3),
            "seed": args.seed,
            "dapper": dapper.__version__,
        }
        print(json.dumps(rec), flush=True)
        info(f"  {key}: rmse_a={rec['rmse_a']:.4f} +/- {av.err.rms.a.prec:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
