"""``latentda run`` on stored trajectories of a field system, through the real entry point:
LD-EnSF and LEVDA (no encoder needed) on the tiny Kolmogorov store, outputs checked
against each other and against the Python API, the same numbers as the benchmark's cell for
the same setting, and bad input as one line with exit code 2."""

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from latentda.data import open_dataset
from latentda.data.splits import load_split, normaliser_for
from latentda.experiments.field_config import METHODS, MethodContext, Setting, SettingConfig
from latentda.experiments.field_outcomes import attempt
from latentda.experiments.field_run import field_run_config, run_field
from test_cli import run_cli, write

SETTING = "observations: {layout: regular, ny: 4, nx: 4, noise_level: 0.1, every: 1}"


def experiment(store: Path, dirs: tuple[Path, Path], method: str, encoder: bool = True) -> str:
    enc = f", encoder: {dirs[1]}" if encoder else ""
    return (
        f"data: {store}\n"
        f"surrogates: {{ldnet: {dirs[0]}{enc}}}\n"
        f"{SETTING}\n"
        f"method: {method}\n"
        "trajectories: 2\n"
        "seeds: [0]\n"
    )


@pytest.fixture(scope="module")
def ldensf_run(
    kolmo_store: Path, surrogate_dirs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    tmp = tmp_path_factory.mktemp("run")
    exp = write(tmp, experiment(kolmo_store, surrogate_dirs, "{name: ldensf, ensemble_size: 8}"))
    res = run_cli("run", str(exp), "--out", str(tmp / "out"), "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "ldensf: rel_rmse=" in res.stdout and "over 2/2 runs" in res.stdout
    return tmp / "out"


def test_ldensf_run_writes_metrics_and_analysis(ldensf_run: Path, kolmo_store: Path) -> None:
    metrics = json.loads((ldensf_run / "metrics.json").read_text())
    assert metrics["method"] == "ldensf" and metrics["n_finished"] == 2
    assert metrics["averaged_over"]["trajectories"] == 2
    assert metrics["averaged_over"]["split"] == "test"
    assert metrics["observations"]["sensors"] == 16
    assert metrics["config"]["method"]["ensemble_size"] == 8
    for key in ("rel_rmse", "rmse", "spread", "crps", "coverage90", "param_rel_error"):
        assert np.isfinite(metrics[key]["time_mean"]["mean"]), key
    ds = xr.open_dataset(ldensf_run / "analysis.nc", engine="h5netcdf")
    store = open_dataset(kolmo_store)
    assert ds["mean"].shape == (2, 10, 2, 16, 16) and ds["std"].shape == (2, 10, 2, 16, 16)
    assert ds["readings"].shape == (2, 10, 16, 2) and ds["param_mean"].shape == (2, 10, 1)
    assert list(ds["trajectory"].values) == metrics["averaged_over"]["store_index"]
    # The stored per-frame scores are those averaged in metrics.json, and the stored mean
    # field scores as the stored rel_rmse against the store's truth.
    per_run = ds["rel_rmse"].mean("time").values
    assert float(per_run.mean()) == pytest.approx(metrics["rel_rmse"]["time_mean"]["mean"])
    ratio = ds["spread"].mean("time").values / ds["rmse"].mean("time").values
    assert float(ratio.mean()) == pytest.approx(metrics["spread_skill"]["time_mean"]["mean"])
    truth = store["fields"].values[int(ds["trajectory"][0])]
    err = ds["mean"].values[0] - truth
    rel = np.sqrt((err**2).sum((1, 2, 3)) / (truth**2).sum((1, 2, 3)))
    np.testing.assert_allclose(rel, ds["rel_rmse"].values[0], rtol=1e-5)
    assert sorted(p.name for p in ldensf_run.iterdir()) == ["analysis.nc", "metrics.json"]


def test_run_equals_the_benchmark_cell(
    ldensf_run: Path, kolmo_store: Path, surrogate_dirs: tuple[Path, Path]
) -> None:
    """The same setting, method and seed through the benchmark's pieces give the same
    scores: run and benchmark observe and build methods in one place."""
    ds = open_dataset(kolmo_store)
    normaliser = normaliser_for(ds, load_split(ds, "train"))
    cfg = SettingConfig(layout="regular", ny=4, nx=4, noise_level=0.1)
    setting = Setting("paper", cfg, ds, normaliser, seed=0)
    ctx = MethodContext(ds, normaliser, {"ldnet": surrogate_dirs[0], "encoder": surrogate_dirs[1]})
    method = METHODS["ldensf"].with_knobs(8).build(ctx)
    outcome = attempt(method, setting.case("test", 1, 0))
    assert outcome.result is not None
    ran = xr.open_dataset(ldensf_run / "analysis.nc", engine="h5netcdf")
    np.testing.assert_array_equal(outcome.result.scores["crps"].numpy(), ran["crps"].values[1])


def test_levda_runs_without_an_encoder_and_is_reproducible(
    kolmo_store: Path, surrogate_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    text = experiment(
        kolmo_store,
        surrogate_dirs,
        "{name: levda, ensemble_size: 8, window: 2, inflation: 1.0, iterations: 3}",
        encoder=False,
    )
    config = field_run_config({**_yaml(text), "trajectories": [0]})
    a, b = run_field(config), run_field(config)
    assert a["method"] == "levda" and a["n_finished"] == 1
    assert a["rel_rmse"] == b["rel_rmse"] and a["coverage90"] == b["coverage90"]
    assert a["config"]["method"]["iterations"] == 3


def test_moving_sensors_at_random_times_are_written(
    kolmo_store: Path, surrogate_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    text = experiment(kolmo_store, surrogate_dirs, "{name: levda, ensemble_size: 8, window: 2}")
    data = {**_yaml(text), "trajectories": [1]}
    data["observations"].update(drift=0.5, times="random", every=2)
    summary = run_field(field_run_config(data), tmp_path / "out")
    ds = xr.open_dataset(tmp_path / "out" / "analysis.nc", engine="h5netcdf")
    assert ds["sensor_points"].dims == ("time", "sensor", "axis")
    assert ds["sensor_points"].shape == (10, 16, 2)
    observed = np.isfinite(ds["readings"].values[0]).any((1, 2))
    assert observed[0] and observed.sum() == summary["n_observed_frames"] < 10


def test_no_assimilation_needs_no_encoder(
    kolmo_store: Path, surrogate_dirs: tuple[Path, Path]
) -> None:
    text = experiment(kolmo_store, surrogate_dirs, "{name: no_assimilation}", encoder=False)
    summary = run_field(field_run_config({**_yaml(text), "trajectories": 1}))
    assert summary["n_finished"] == 1 and summary["latent_dim"] == 5


@pytest.mark.parametrize(
    ("method", "encoder", "sets", "message"),
    [
        ("{name: ldensf}", False, [], "surrogates.encoder: method ldensf needs a trained encoder"),
        ("{name: levda, windw: 2}", True, [], "config.method: unknown key 'windw'"),
        ("{name: levda, window: 0}", True, [], "config.method.window must be >= 1"),
        ("{name: kalman}", True, [], "unknown method 'kalman'"),
        ("{name: ldensf}", True, ["trajectories=50"], "the test split holds 3, 50 wanted"),
        ("{name: ldensf}", True, ["data=/nonexistent.zarr"], "no such dataset"),
        ("{name: ldensf}", True, ["observations.ny=3"], "fixed-order encoder"),
    ],
)
def test_bad_field_runs_fail_in_one_line(
    kolmo_store: Path,
    surrogate_dirs: tuple[Path, Path],
    tmp_path: Path,
    method: str,
    encoder: bool,
    sets: list[str],
    message: str,
) -> None:
    exp = write(tmp_path, experiment(kolmo_store, surrogate_dirs, method, encoder))
    overrides = [a for s in sets for a in ("--set", s)]
    res = run_cli("run", str(exp), "--out", str(tmp_path / "out"), "--no-progress", *overrides)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "out" / "metrics.json").exists()


def _yaml(text: str) -> dict:
    import yaml

    return yaml.safe_load(text)


def test_example_parses() -> None:
    from latentda.experiments.config import load_yaml
    from latentda.experiments.run import experiment_config

    root = Path(__file__).resolve().parents[1] / "examples"
    config = experiment_config(load_yaml(root / "kolmo_levda.yaml"))
    assert config.method.tag == "levda" and config.method.iterations == 5
    assert config.surrogates.artefacts() == {"ldnet": Path("runs/ldnet")}
