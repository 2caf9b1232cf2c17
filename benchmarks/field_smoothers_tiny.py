"""LEVDA and full-state 4DEnVar against LD-EnSF and the prior ensembles on the tests' tiny
Kolmogorov store (issue 6; a smoke measurement, not the issue's ``bench`` table).

Builds the store and the surrogate exactly as ``tests/conftest.py`` does (16², 10 frames,
12 trajectories; LDNet d_s = 4 and a fixed-order encoder for 4×4 regular sensors), then runs
every method on the 3 test trajectories (4×4 sensors, 10 % noise, every frame, N = 20, seed 0)
and prints one Markdown row per method: scores averaged over trajectories and timings per
trajectory. LEVDA is also run over a small grid of windows and inflations.

The LDNet's own error ``σ_m`` (:mod:`latentda.surrogates.model_error`) enters twice, and
each use is switched separately: ``R`` (``LEVDA(model_error=...)``: ``σ_m²`` added to the
readings' noise variance) and ``members`` (``LEVDAMethod``/``LDEnSFMethod(model_error=...)``:
the scored members are the predictive ones, decoded plus a centred draw of ``σ_m``). Rows
marked "off" are the methods as they were before (latent uncertainty only); the unmarked
rows use the defaults (both on).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/field_smoothers_tiny.py [--work DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import torch

from _common import busy_cores, save
from latentda.data import open_dataset
from latentda.experiments.field_methods import SolverModel, no_assimilation_method
from latentda.experiments.field_smoothers import FourDEnVarFieldMethod, LEVDAMethod
from latentda.experiments.field_twin import FieldMethod, LDEnSFMethod, make_case, run_method
from latentda.filters.envar import FourDEnVar
from latentda.filters.ldensf import LatentSurrogate
from latentda.filters.levda import LEVDA

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("rel_rmse", "crps", "coverage90", "param_rel_error")


def build(work: Path) -> tuple[Path, LatentSurrogate]:
    """The store and surrogate of ``tests/conftest.py``: its recipe, ``tests/tiny.py``
    (loaded by path: the tests are no package), with the store kept in ``work``."""
    spec = importlib.util.spec_from_file_location("tiny", ROOT / "tests" / "tiny.py")
    assert spec is not None and spec.loader is not None
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    path = work / "kolmo16.zarr"
    if not path.exists():
        tiny.make_kolmo_store(path)
    ds = open_dataset(path)
    ld, enc = work / "ldnet", work / "encoder"
    tiny.train_tiny_surrogate(ds, ld, enc)
    return path, LatentSurrogate.load(ld, enc, ds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="store and checkpoints")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = args.work or Path(tempfile.mkdtemp(prefix="levda-tiny-"))
    work.mkdir(parents=True, exist_ok=True)
    store, sur = build(work)
    ds = open_dataset(store)
    cases = [make_case(ds, i, sur.sensors, sur.normaliser, 0.1, seed=0) for i in range(3)]
    solver = SolverModel.from_dataset(ds, sur.normaliser)
    # One LEVDA run first: torch.func's first forward-mode pass costs ~2 s once per process.
    run_method(LEVDAMethod(sur, LEVDA(window=4)), cases[0])
    off = LEVDA(window=4, model_error=False)
    methods: list[tuple[str, FieldMethod]] = [
        ("LEVDA L=4 (R off, members off)", LEVDAMethod(sur, off, model_error=False)),
        ("LEVDA L=4 (R on, members off)", LEVDAMethod(sur, LEVDA(window=4), model_error=False)),
        ("LEVDA L=4 (R off, members on)", LEVDAMethod(sur, off)),
        ("LEVDA L=4", LEVDAMethod(sur, LEVDA(window=4))),
        ("LD-EnSF (members off)", LDEnSFMethod(sur, model_error=False)),
        ("LD-EnSF", LDEnSFMethod(sur)),
        (
            "no assimilation (LDNet, members off)",
            LDEnSFMethod(sur, assimilate=False, model_error=False),
        ),
        ("no assimilation (LDNet)", LDEnSFMethod(sur, assimilate=False)),
        ("4DEnVar full state L=4", FourDEnVarFieldMethod(solver, FourDEnVar(window=4))),
        ("no assimilation (solver)", no_assimilation_method(ds, 20, sur.normaliser)),
    ]
    methods += [
        (f"LEVDA L={w} infl={i}", LEVDAMethod(sur, LEVDA(window=w, inflation=i)))
        for w in (1, 2, 8)
        for i in (1.0, 1.5)
    ]
    load = busy_cores()
    rows = {}
    print("| method | rel RMSE | CRPS | 90 % cov. | param rel err (final) | dyn s | filter s |")
    print("|---|---|---|---|---|---|---|")
    for label, method in methods:
        t0 = time.perf_counter()
        runs = [run_method(method, c) for c in cases]
        wall = (time.perf_counter() - t0) / len(cases)
        means = {k: sum(r.time_means()[k] for r in runs) / len(runs) for k in KEYS}
        final_par = sum(r.final()["param_rel_error"] for r in runs) / len(runs)
        dyn = sum(r.timings["dynamics_s"] for r in runs) / len(runs)
        flt = sum(r.timings["filter_s"] for r in runs) / len(runs)
        rows[label] = {**means, "param_final": final_par, "dynamics_s": dyn, "filter_s": flt}
        rows[label]["wall_s"] = wall
        print(
            f"| {label} | {means['rel_rmse']:.4f} | {means['crps']:.4f} | "
            f"{means['coverage90']:.3f} | {final_par:.3f} | {dyn:.3f} | {flt:.3f} |"
        )
    path = save("field-smoothers-tiny", {"busy_cores_before": load, "rows": rows})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
