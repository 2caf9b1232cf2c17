"""Peer benchmark: DAPPER on Lorenz-96 "sakov2008" (run by the DAPPER venv's python).

This script is standalone: it imports DAPPER (see ``dapper_venv.sh``) and never latentda,
so latentda does not depend on DAPPER. Usage::

    PY="$(bash benchmarks/dapper_venv.sh | tail -n 1)"
    "$PY" benchmarks/dapper_peer.py [--seed 3] [--methods etkf,letkf40,...] [--json-only]
                                    [--dim 40] [--cycles 1000]

Setting (DAPPER 1.7.1, ``dapper.mods.Lorenz96.sakov2008``): d = 40, F = 8, dt = 0.05 with
one RK4 step per cycle (dko = 1), H = I, R = I, X0 = N(e_1, 0.001 I) for truth and ensemble
alike. The first observation is at k = 1 (DAPPER never observes t = 0). For every method the
script prints one JSON line with the time means over the analysis times t > BurnIn
(DAPPER's ``avrgs.err.rms.a`` etc.) and the wall time of ``xp.assimilate`` alone.

``--dim D`` (D != 40) builds the same HMM as ``sakov2008`` with Nx = D (Lorenz-96 is
length-agnostic): X0 = N(e_1, 0.001 I) in R^D, H = I_D, R = I_D, and the LETKF localizer
``nd_Id_localization((D,), (2,))`` (periodic distances, local analyses on batches of 2 points).
``--cycles K`` shortens the run; burn-in is min(400, K // 2) cycles.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

import numpy as np

# No figures, no tqdm bars. DAPPER prints a liveplotting warning to stdout at import time
# under a non-interactive backend: send it to stderr so that stdout holds only JSON lines.
os.environ.setdefault("MPLBACKEND", "Agg")
with contextlib.redirect_stdout(sys.stderr):
    import dapper
    import dapper.mods as modelling
    import dapper.tools.progressbar as dpr_progressbar
    from dapper.da_methods import LETKF, EnKF
    from dapper.dpr_config import rc
    from dapper.mods import Chronology
    from dapper.mods.Lorenz96 import LPs, Tplot, dstep_dx, step, x0
    from dapper.mods.Lorenz96.sakov2008 import HMM as SAKOV2008_HMM
    from dapper.tools.localization import nd_Id_localization
    from dapper.tools.seeding import set_seed

rc.liveplotting = False
dpr_progressbar.disable_progbar = True

# sakov2008 in DAPPER 1.7.1 defines
#     tseq = Chronology(0.05, dko=1, Ko=1000, Tplot=Tplot, BurnIn=2 * Tplot)
# i.e. Ko + 1 = 1001 observation cycles (K = 1001, T = 50.05) and BurnIn = 20.
# Changed here: K = 1000 (so 1000 cycles, kko = 1..1000, T = 50), BurnIn kept at 20 time units.
# DAPPER averages over t > BurnIn (strict), i.e. over cycles k = 401..1000 (600 analyses).
# With --cycles K: burn-in min(400, K // 2) cycles, i.e. BurnIn = that many times DT.
N_CYCLES = 1000
BURN_IN_CYCLES = 400
DT = 0.05
DIM = 40

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


def sakov2008_hmm(dim: int) -> modelling.HiddenMarkovModel:
    """``dapper.mods.Lorenz96.sakov2008.HMM`` itself for dim 40, else its Nx = dim twin.

    Mirrors sakov2008.py line by line (the caller replaces tseq anyway).
    """
    if dim == DIM:
        return SAKOV2008_HMM
    Nx = dim
    Dyn = {"M": Nx, "model": step, "linear": dstep_dx, "noise": 0}
    X0 = modelling.GaussRV(mu=x0(Nx), C=0.001)
    jj = np.arange(Nx)  # obs_inds
    Obs = modelling.partial_Id_Obs(Nx, jj)
    Obs["noise"] = 1
    Obs["localizer"] = nd_Id_localization((Nx,), (2,))
    tseq = Chronology(DT, dko=1, K=N_CYCLES, Tplot=Tplot, BurnIn=BURN_IN_CYCLES * DT)
    HMM = modelling.HiddenMarkovModel(Dyn, Obs, tseq, X0)
    HMM.liveplotters = LPs(jj)
    return HMM


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=3, help="truth/obs seed (default 3)")
    p.add_argument(
        "--methods",
        default="all",
        help=f"comma-separated subset of {','.join(METHODS)} (default all)",
    )
    p.add_argument("--json-only", action="store_true", help="print only the JSON lines")
    p.add_argument("--dim", type=int, default=DIM, help=f"state dimension (default {DIM})")
    p.add_argument(
        "--cycles",
        type=int,
        default=N_CYCLES,
        help=f"cycles (default {N_CYCLES}); burn-in min({BURN_IN_CYCLES}, cycles // 2)",
    )
    args = p.parse_args(argv)
    if args.seed == 0:
        p.error("DAPPER refuses seed 0")
    if args.dim < 4:
        p.error("--dim must be >= 4")
    if args.cycles < 2:
        p.error("--cycles must be >= 2")
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

    burn_in = min(BURN_IN_CYCLES, args.cycles // 2)
    HMM = sakov2008_hmm(args.dim)
    HMM.tseq = Chronology(DT, dko=1, K=args.cycles, Tplot=Tplot, BurnIn=burn_in * DT)
    tseq = HMM.tseq
    assert tseq.Ko + 1 == args.cycles and tseq.kko[0] == 1 and HMM.Nx == args.dim
    n_avg = int(tseq.masko.sum())
    # DAPPER averages over t > BurnIn: make sure that is exactly cycles burn_in+1..K.
    assert n_avg == args.cycles - burn_in, (n_avg, args.cycles, burn_in)
    info(
        f"dapper {dapper.__version__}: Nx={HMM.Nx} K={tseq.K} Ko+1={tseq.Ko + 1} T={tseq.T:g} "
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
            "dim": args.dim,
            "cycles": args.cycles,
            "burn_in": burn_in,
            "dapper": dapper.__version__,
        }
        print(json.dumps(rec), flush=True)
        info(f"  {key}: rmse_a={rec['rmse_a']:.4f} +/- {av.err.rms.a.prec:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
