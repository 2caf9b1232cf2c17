"""``latentda benchmark`` through its real entry point on a tiny Kolmogorov configuration:
every file with every registered method, counts recorded, a second run reusing the cache
with identical numbers, knobs tuned on validation trajectories only, bad input giving exit
code 2 with a one-line message, and a diverging method recorded with its frame instead of
ending the run."""

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import zarr

from latentda.cli import main
from latentda.data import open_dataset
from latentda.errors import FilterDivergence
from latentda.experiments import benchmark as benchmark_module
from latentda.experiments import field_twin
from latentda.experiments.bench_progress import Journal, progress_key
from latentda.experiments.benchmark import Cache, benchmark_config
from latentda.experiments.config import parse_overrides
from latentda.experiments.field_config import METHODS
from latentda.experiments.field_outcomes import attempt, summarise
from latentda.experiments.field_twin import FieldMethod, MethodRun, TwinCase
from latentda.schema import to_dict

# 16² grid, 6 frames after a short spin-up, 12 trajectories (7/2/3 train/val/test), a small
# LDNet, encoders and VAEs trained for a few epochs, two knob combinations per method tried on
# one validation trajectory: the test checks the pipeline, not the accuracy.
TINY = [
    "system.n=16",
    "trajectories=12",
    "data_seed=3",
    "paper.ny=4",
    "paper.nx=4",
    "ensemble_size=8",
    "ldnet.model.latent_dim=4",
    "ldnet.model.recon_width=16",
    "ldnet.model.recon_blocks=1",
    "ldnet.model.fourier_features=8",
    "ldnet.model.dyn_width=16",
    "ldnet.stage1.epochs=20",
    "ldnet.stage1.points=64",
    "ldnet.stage1.frames=5",
    "ldnet.stage1.eval_every=10",
    "ldnet.stage2.epochs=2",
    "ldnet.stage2.points=64",
    "ldnet.stage2.eval_every=2",
    "encoder.model.hidden=16",
    "encoder.model.embed=8",
    "encoder.stage.epochs=10",
    "encoder.stage.batch_size=3",
    "vae.model.latent_dim=16",
    "vae.model.levels=2",
    "vae.model.conv_widths=[16, 32]",
    "vae.model.obs_hidden=32",
    "vae.dynamics.hidden=16",
    "vae.stage.epochs=10",
    "vae.stage.batch_size=16",
    "vae.stage.eval_every=5",
    "vae.dyn_stage.epochs=1",
    "vae.dyn_stage.batch_size=4",
    "vae.dyn_stage.eval_every=1",
    "val_trajectories=1",
    "tuning_budget=2",
    "knobs.4denvar.iterations=2",  # a fixed knob: it must reach the search and the test runs
    "system.spinup_time=0.4",
    "system.n_frames=6",
]
SETS = [arg for pair in TINY for arg in ("--set", pair)]
N_TEST = 3  # the whole test split of the tiny store (ci size allows fewer than 10)


def benchmark(out: Path, cache: Path, *extra: str) -> None:
    main(["benchmark", "--system", "kolmogorov", "--size", "ci", "--out", str(out),
          "--cache", str(cache), "--no-progress", *SETS, *extra])  # fmt: skip


def fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run the CLI expecting a user error; returns its one-line message (progress lines
    such as "data: reused ..." may precede it on stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[-1].startswith("latentda: error: ") and err.endswith("\n"), err
    assert "Traceback" not in err and "error" not in "".join(lines[:-1]), err
    return lines[-1]


def checkpoints(cache: Path) -> dict[str, int]:
    """Modification times (ns) of every trained artefact file in the cache."""
    return {
        str(p.relative_to(cache)): p.stat().st_mtime_ns
        for p in sorted(cache.glob("*/*/*.safetensors"))
    }


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("bench")
    benchmark(root / "out1", root / "cache")
    results = json.loads((root / "out1" / "results.json").read_text())
    return {"root": root, "results": results, "mtimes": checkpoints(root / "cache")}


def test_writes_results_tables_and_figures_for_every_method(first: dict[str, Any]) -> None:
    out, results = first["root"] / "out1", first["results"]
    assert results["test"]["n_trajectories"] == N_TEST and results["test"]["seeds"] == [0]
    assert results["dataset"]["splits"] == {"train": 7, "val": 2, "test": 3}
    assert set(results["settings"]) == {"paper", "sparse"}
    obs = results["settings"]["sparse"]["observations"]
    assert obs["every"] == 5 and obs["sensors"] == 4  # 0.1 % of 256 points, at least 4
    for name, setting in results["settings"].items():
        assert set(setting["methods"]) == set(METHODS), name
        for m in setting["methods"].values():
            assert m["n_trajectories"] == N_TEST and m["n_finished"] == N_TEST, m["errors"]
            assert m["seeds"] == [0] and m["latent_dim"] > 0
            for key in ("rel_rmse", "param_rel_error", "crps", "coverage90", "spread_skill"):
                assert np.isfinite(m[key]["time_mean"]["mean"]), key
                assert np.isfinite(m[key]["final"]["std"]), key
            assert set(m["timings"]) >= {"dynamics_s", "filter_s", "reconstruction_s"}
            assert len(m["rel_rmse_per_frame"]["mean"]) == 6
        for name, cap in (("levda", 10), ("4denvar", 2)):  # the window smoothers' steps
            it = setting["methods"][name]["gn_iterations"]
            assert 0 <= it["mean"] <= it["max"] <= cap and it["max"] >= 1, it
            assert it["windows"] >= N_TEST and it["runs"] == N_TEST, it
        assert "gn_iterations" not in setting["methods"]["ldensf"]
        assert setting["methods"]["4denvar"]["fixed_knobs"] == {"iterations": 2}
        assert setting["methods"]["letkf"]["fixed_knobs"] == {}
    assert results["settings"]["paper"]["methods"]["ldensf"]["latent_dim"] == 4 + 1
    # Every method had the same budget: two grid points (one without knobs) on the same
    # trajectory.
    tuning = results["settings"]["paper"]["tuning"]
    assert tuning["positions"] == [0]
    for name, t in tuning["methods"].items():
        assert len(t["trials"]) == min(2, len(METHODS[name].candidates()))
        assert t["chosen"] in [trial["knobs"] for trial in t["trials"]]
    tables = (out / "tables.md").read_text()
    assert "Table 2" in tables and "Table 3" in tables
    assert tables.count("Gauss–Newton iterations per window, mean: LEVDA") == 2
    assert tables.count("| 4DEnVar (full state) | iterations=2, window=") == 2
    # Table 1 per setting: the LDNet, the setting's encoder and its VAE (three rows), with
    # each artefact's own test scores.
    assert tables.count("### Table 1") == 2
    for name, own in results["artefacts"].items():
        rows = [r for a in own.values() for r in a["scores"]]
        assert [r["model"].split()[0].rstrip(",") for r in rows] == [
            "LDNet",
            "observation",
            *["VAE"] * 2,
            "VAE-dyn",
        ]
        ldnet, encoder = rows[0], rows[1]
        assert ldnet["model"] == "LDNet (d_s = 4)" and 0 < ldnet["rel_rmse"] < 10
        assert (
            ldnet["rel_rmse"]
            == json.loads((Path(own["ldnet"]["directory"]) / "metrics.json").read_text())[
                "test_rel_rmse"
            ]
        )
        assert encoder["rel_rmse"] is None and encoder["latent_rel_error"] > 0
        assert all(r["parameters"] > 0 and r["train_s"] > 0 for r in rows), name
        for r in rows:
            assert f"| {r['model']} |" in tables
    for spec in METHODS.values():
        assert tables.count(f"| {spec.label} |") == 2 * 2  # two tables × two settings
    figures = [Path(f) for f in results["figures"]]
    settings = ("paper", "sparse")
    assert {f.name for f in figures} == {
        *(f"fields_{s}_{c}.png" for s in settings for c in ("u", "v")),
        *(f"{kind}_{s}.png" for kind in ("rel_error", "params") for s in settings),
    }
    assert all(f.parent == out and f.stat().st_size > 1000 for f in figures)


def test_second_run_reuses_cache_and_tunes_on_validation_only(
    first: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = first["root"]
    reads: list[tuple[str, int]] = []
    stored = field_twin.stored_trajectory

    def spy(ds: Any, index: int, split: str = "test") -> Any:
        reads.append((split, index))
        return stored(ds, index, split)

    monkeypatch.setattr(field_twin, "stored_trajectory", spy)
    benchmark(root / "out2", root / "cache")
    again = json.loads((root / "out2" / "results.json").read_text())
    # Nothing generated or trained: the same files, untouched, flagged as reused.
    assert again["dataset"]["generated_now"] == 0
    reused = [a["reused"] for own in again["artefacts"].values() for a in own.values()]
    assert all(reused) and len(reused) == 2 * 3  # per setting: LDNet, encoder, VAE
    assert not any(a["reused"] for a in first["results"]["artefacts"]["paper"].values())
    # One LDNet, an encoder and a VAE per setting.
    assert checkpoints(root / "cache") == first["mtimes"] and len(first["mtimes"]) == 5
    # Same seed, same readings and filters: the same numbers.
    for name, setting in again["settings"].items():
        for m, scores in setting["methods"].items():
            before = first["results"]["settings"][name]["methods"][m]
            assert scores["rel_rmse"] == before["rel_rmse"], (name, m)
            assert scores["knobs"] == before["knobs"]

    # The knob search read validation trajectories only, and exactly the recorded ones.
    ds = open_dataset(again["dataset"]["store"])
    test_idx = again["test"]["store_index"]
    assert (ds["split"].values[test_idx] == "test").all()
    per_setting = len(reads) // 2
    for k, (name, setting) in enumerate(again["settings"].items()):
        tuning = setting["tuning"]
        assert (
            tuning["split"] == "val" and (ds["split"].values[tuning["store_index"]] == "val").all()
        )
        assert not set(tuning["store_index"]) & set(test_idx)
        mine = reads[k * per_setting : (k + 1) * per_setting]
        n_val = len(tuning["positions"])
        assert mine[:n_val] == [("val", p) for p in tuning["positions"]], name
        assert mine[n_val:] == [("test", p) for p in again["test"]["positions"]], name


def test_an_interrupted_run_resumes_from_its_finished_methods(
    first: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each finished (setting, method) is saved under OUT/progress: the same command again
    recomputes nothing and reports the same numbers; a changed result-relevant key (here
    the tuning budget) recomputes, and a method added to the list leaves the others."""
    root = first["root"]
    out = root / "out1"
    assert {p.name for p in (out / "progress" / "paper").glob("*.json")} == {
        f"{m}.json" for m in METHODS
    }

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a finished method was run again")

    monkeypatch.setattr(benchmark_module, "attempt", never)
    # Every reused method brings the full-order time of its own run: nothing is re-timed,
    # and its speed-up is the one of that run.
    monkeypatch.setattr(benchmark_module, "full_order_dynamics", never)
    capsys.readouterr()
    benchmark(out, root / "cache")
    assert capsys.readouterr().err.count(": reused ") >= 2 * len(METHODS)
    again = json.loads((out / "results.json").read_text())
    for name, setting in again["settings"].items():
        for m, scores in setting["methods"].items():
            before = first["results"]["settings"][name]["methods"][m]
            for key in ("rel_rmse", "crps", "coverage90", "param_rel_error", "knobs"):
                assert scores[key] == before[key], (name, m, key)
            assert scores["timings"] == before["timings"]
            assert scores["full_order"] == before["full_order"]
            assert scores["dynamics_speedup"] == before["dynamics_speedup"]
    # Another tuning budget is another key: the first method to run anew hits `never`.
    with pytest.raises(AssertionError, match="run again"):
        benchmark(out, root / "cache", "--set", "tuning_budget=1")


def test_a_pair_saved_without_its_reference_is_timed_once(
    first: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finished pair older than the stored full-order reference gets one at the next run
    and keeps it: later runs divide by the same timing instead of re-timing the solver."""
    out = tmp_path / "out"
    shutil.copytree(first["root"] / "out1", out)
    meta_path = out / "progress" / "paper" / "ldensf.json"
    meta = json.loads(meta_path.read_text())
    del meta["full_order"]
    meta_path.write_text(json.dumps(meta))

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a finished method was run again")

    timed = {"dynamics_s": 123.0, "members": 20, "state_dim": 1}
    only = ("--set", "methods=[ldensf]", "--set", "settings=[paper]")
    monkeypatch.setattr(benchmark_module, "attempt", never)
    monkeypatch.setattr(benchmark_module, "full_order_dynamics", lambda *a, **k: timed)
    benchmark(out, first["root"] / "cache", *only)
    assert json.loads(meta_path.read_text())["full_order"] == timed
    monkeypatch.setattr(benchmark_module, "full_order_dynamics", never)
    benchmark(out, first["root"] / "cache", *only)
    again = json.loads((out / "results.json").read_text())
    assert again["settings"]["paper"]["methods"]["ldensf"]["full_order"] == timed


class Stop(Exception):
    """Stands for the machine going down in the middle of a run."""


def test_a_method_stopped_midway_resumes_at_its_next_case(
    first: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A (setting, method) pair stopped after its tuning trials and one test case keeps
    them in its journal: the same command again runs only the other cases, reports the
    numbers of an uninterrupted run with the reference timed by the run that started the
    pair, and leaves no journal behind."""
    root = first["root"]
    out = root / "out-stopped"
    ran: list[TwinCase] = []

    def stop_after(limit: int) -> Any:
        def run(method: Any, case: TwinCase, *args: Any, **kwargs: Any) -> Any:
            if len(ran) == limit:
                raise Stop
            ran.append(case)
            return attempt(method, case, *args, **kwargs)

        return run

    # Per setting: 2 tuning trials on 1 validation trajectory, then N_TEST test cases.
    per_setting = 2 * 1 + N_TEST
    monkeypatch.setattr(benchmark_module, "attempt", stop_after(per_setting - N_TEST + 1))
    with pytest.raises(Stop):
        benchmark(out, root / "cache", "--set", "methods=[ldensf]")
    (journal,) = (out / "progress").glob("*/ldensf.partial")
    assert len(list((journal / "tuning").glob("*.json"))) == 2
    assert len(list((journal / "test").glob("*.json"))) == 1
    assert not (journal.parent / "ldensf.json").exists()
    started = json.loads((journal / "full_order.json").read_text())

    ran.clear()
    monkeypatch.setattr(benchmark_module, "attempt", stop_after(10**6))
    benchmark(out, root / "cache", "--set", "methods=[ldensf]")
    assert len(ran) == 2 * per_setting - (per_setting - N_TEST + 1)
    assert not list((out / "progress").glob("*/*.partial"))
    again = json.loads((out / "results.json").read_text())
    for name, setting in again["settings"].items():
        scores = setting["methods"]["ldensf"]
        before = first["results"]["settings"][name]["methods"]["ldensf"]
        for key in ("rel_rmse", "crps", "coverage90", "param_rel_error", "knobs"):
            assert scores[key] == before[key], (name, key)
        assert (
            setting["tuning"]["methods"]["ldensf"]["trials"]
            == first["results"]["settings"][name]["tuning"]["methods"]["ldensf"]["trials"]
        )
    assert again["settings"][journal.parent.name]["methods"]["ldensf"]["full_order"] == started


def test_a_journal_kept_for_another_key_is_emptied(tmp_path: Path) -> None:
    key = {"setting": "paper", "method": "ldensf", "budget": 2}
    fail = SimpleNamespace(result=None, trace=None, error="diverged at cycle 3")
    first_run = Journal(tmp_path / "j", key)
    assert first_run.trial(0, 0, {"scale": 7.0}, lambda: fail) == (math.inf, fail.error)

    def never() -> Any:
        raise AssertionError("recomputed")

    assert Journal(tmp_path / "j", key).trial(0, 0, {"scale": 7.0}, never)[1] == fail.error
    with pytest.raises(AssertionError, match="recomputed"):
        Journal(tmp_path / "j", {**key, "budget": 1}).trial(0, 0, {"scale": 7.0}, never)


def test_a_journalled_case_comes_back_with_its_gauss_newton_iterations(tmp_path: Path) -> None:
    key = {"setting": "paper", "method": "4denvar", "budget": 2}
    result = field_twin.FieldTwinResult(
        scores={"rel_rmse": torch.tensor([0.3, 0.2])},
        timings={"dynamics_s": 1.0},
        n_frames=2,
        n_observed=2,
        n_sensors=4,
        latent_dim=9,
        gn_iterations=(3, 1),
    )
    done = SimpleNamespace(result=result, trace=None, error=None)
    Journal(tmp_path / "j", key).outcome((0, 0), lambda: done)

    def never() -> Any:
        raise AssertionError("recomputed")

    back = Journal(tmp_path / "j", key).outcome((0, 0), never).result
    assert back is not None and back.gn_iterations == (3, 1)
    assert torch.equal(back.scores["rel_rmse"], result.scores["rel_rmse"].double())


def test_a_journal_without_its_empty_directories_still_records(tmp_path: Path) -> None:
    """A journal committed with tuning trials but no test case comes back from a clone
    without ``test/`` (git keeps no empty directory); the next case is still recorded."""
    key = {"setting": "paper", "method": "ldetkf", "budget": 2}
    fail = SimpleNamespace(result=None, trace=None, error="diverged at cycle 3")
    Journal(tmp_path / "j", key).trial(0, 0, {"inflation": 1.0}, lambda: fail)
    (tmp_path / "j" / "test").rmdir()
    journal = Journal(tmp_path / "j", key)
    assert journal.outcome((0, 0), lambda: fail).error == fail.error
    assert (tmp_path / "j" / "test" / "0_0.json").exists()
    assert (tmp_path / "j" / "tuning" / "0_0.json").exists()


def test_bad_input_exits_2_with_one_line(
    first: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "out")
    assert "unknown system 'lorenz'" in fails(
        capsys, "benchmark", "--system", "lorenz", "--out", out
    )
    assert "unknown key 'colour'" in fails(
        capsys, "benchmark", "--system", "kolmogorov", "--out", out, "--set", "colour=red"
    )
    assert "unknown size" in fails(
        capsys, "benchmark", "--system", "kolmogorov", "--size", "huge", "--out", out
    )
    assert ">= 10" in fails(
        capsys, "benchmark", "--system", "kolmogorov", "--size", "bench", "--out", out,
        "--trajectories", "3",
    )  # fmt: skip
    assert "--seeds" in fails(
        capsys, "benchmark", "--system", "kolmogorov", "--out", out, "--seeds", "1,x"
    )

    # A half-written store: every trajectory flagged done, one without its data.
    cfg = benchmark_config("kolmogorov", "ci", parse_overrides(TINY))
    good = Cache(first["root"] / "cache", False, print).dataset_path(cfg)
    cache = tmp_path / "cache"
    broken = Cache(cache, False, print).dataset_path(cfg)
    shutil.copytree(good, broken)
    group = zarr.open_group(str(broken), mode="r+")
    train = int(np.flatnonzero(np.asarray(group["split"][:]) == "train")[0])
    group["fields"][train] = np.full(group["fields"].shape[1:], np.nan, dtype=np.float32)
    err = fails(capsys, "benchmark", "--system", "kolmogorov", "--out", out,
                "--cache", str(cache), "--no-progress", *SETS)  # fmt: skip
    assert "NaN or Inf" in err
    # Not a store at all where the store should be.
    shutil.rmtree(broken)
    broken.mkdir()
    (broken / "junk").write_text("x")
    err = fails(capsys, "benchmark", "--system", "kolmogorov", "--out", out,
                "--cache", str(cache), "--no-progress", *SETS)  # fmt: skip
    assert "not a latentda dataset" in err


def test_table_2_names_each_methods_reference_when_runs_timed_it_differently() -> None:
    """Methods computed in different runs (a resumed benchmark) keep the full-order time of
    their own run; Table 2 shows the range and says which speed-up divides which."""
    ref = {"members": 20, "state_dim": 8192}
    methods = {
        "a": {"label": "A", "full_order": {**ref, "dynamics_s": 7.1}},
        "b": {"label": "B", "full_order": {**ref, "dynamics_s": 4.0}},
        "c": {"label": "C", "full_order": {**ref, "dynamics_s": 7.1}},
    }
    full, timed, note = benchmark_module._reference_row(methods)
    assert full["members"] == 20 and timed == "4–7.1"
    assert note[-1].endswith("4 s for B; 7.1 s for A, C.")
    same = {k: {**m, "full_order": {**ref, "dynamics_s": 7.1}} for k, m in methods.items()}
    assert benchmark_module._reference_row(same)[1:] == ("7.1", [])


def test_a_diverging_method_is_recorded_not_fatal() -> None:
    class Diverges(FieldMethod):
        name = "diverges"

        def run(self, case: TwinCase, gen: torch.Generator) -> MethodRun:
            raise FilterDivergence("the ensemble became non-finite in the analysis at frame 3")

    case = SimpleNamespace(seed=0)  # run() raises before reading anything else
    outcome = attempt(Diverges(), case)  # type: ignore[arg-type]
    assert outcome.result is None and "frame 3" in (outcome.error or "")
    summary = summarise({(0, 0): outcome}, full_order_s=1.0)
    assert summary == {"n_runs": 1, "n_finished": 0, "errors": [outcome.error]}


def test_system_presets_apply_at_bench_and_yield_to_set() -> None:
    """The sphere's bench LDNet has the paper's d_s = 50 unless ``--set`` says otherwise; the
    plane systems and the small presets keep the trainer's defaults."""
    assert benchmark_config("sphere", "bench").ldnet["model"]["latent_dim"] == 50
    assert benchmark_config("kolmogorov", "bench").ldnet == {}
    assert benchmark_config("sphere", "ci").ldnet["model"]["latent_dim"] == 9
    over = parse_overrides(["ldnet.model.latent_dim=20"])
    cfg = benchmark_config("sphere", "bench", over)
    assert cfg.ldnet["model"]["latent_dim"] == 20 and cfg.ldnet["stage1"]["epochs"] == 150


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("knobs.letkff.inflation=1", "benchmark.knobs: unknown method 'letkff'"),
        ("knobs.4denvar.iteratons=3", "unknown key 'iteratons'"),
        ("knobs.4denvar.window=2", "benchmark.knobs.4denvar.window is searched by the"),
        ("knobs.4denvar.iterations=0", "benchmark.knobs.4denvar.iterations must be >= 1"),
        ("knobs.letkf.ensemble_size=5", "benchmark.knobs.letkf.ensemble_size is set by the run"),
        ("knobs.letkf=3", "benchmark.knobs.letkf: expected a mapping"),
        # valid with the default window 4, not with the grid's window 2: refused up front
        ("knobs.4denvar.shift=4", "benchmark.knobs.4denvar.shift must lie in [1, window=2]"),
    ],
)
def test_bad_fixed_knobs_exit_2_with_one_line(
    bad: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "out")
    assert message in fails(capsys, "benchmark", "--system", "kolmogorov", "--out", out,
                            "--set", bad)  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_fixed_knobs_reach_the_method_and_its_progress_key() -> None:
    """The sphere's bench 4DEnVar runs 3 Gauss–Newton iterations (its preset), under the
    grid's window and inflation; the fixed knob is part of the key its results are kept
    under, so a run with other fixed knobs does not reuse them."""
    sphere = benchmark_config("sphere", "bench")
    assert sphere.knobs == {"4denvar": {"iterations": 3}}
    method = sphere.method("4denvar", window=8)
    assert (method.iterations, method.window, method.ensemble_size) == (3, 8, 20)
    assert sphere.method("letkf") == METHODS["letkf"].with_knobs(20)
    plane = benchmark_config("kolmogorov", "bench")
    assert plane.knobs == {} and plane.method("4denvar").iterations == 10

    def key(cfg: Any) -> dict[str, Any]:
        return progress_key(to_dict(cfg), "data", "paper", cfg.method("4denvar"), {}, 0)

    assert key(sphere)["defaults"]["iterations"] == 3
    assert key(plane)["defaults"]["iterations"] == 10
    again = benchmark_config("sphere", "bench", parse_overrides(["knobs.4denvar.iterations=10"]))
    assert key(again) == {**key(sphere), "defaults": key(plane)["defaults"]}
    # Parsed as the method parses it: the same key whether given as text or as a number.
    text = benchmark_config(
        "kolmogorov", "bench", parse_overrides(["knobs.4denvar.tolerance=1e-4"])
    )
    assert text.knobs == {"4denvar": {"tolerance": 1e-4}} and key(text) == key(plane)
