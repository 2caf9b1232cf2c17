"""The CLI through its real entry point: a good run, and every kind of bad input giving
exit code 2 with a one-line message and no traceback."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

EXE = Path(sys.executable).parent / "latentda"
CMD = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "latentda"]

GOOD = """\
system:       {name: lorenz96, dim: 40, forcing: 8.0, dt: 0.05}
observations: {operator: identity, noise_std: 1.0, every: 1}
method:       {name: letkf, ensemble_size: 20, inflation: 1.04, localization_radius: 4}
cycles: 60
burn_in: 20
seed: 3
"""


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=timeout, env=env)


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_run_writes_metrics_and_analysis(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run_cli("run", str(write(tmp_path, GOOD)), "--out", str(out), "--no-progress")
    assert res.returncode == 0, res.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("rmse_a", "rmse_f", "spread_a", "crps_a", "coverage90_a", "wall_s"):
        assert isinstance(metrics[key], float)
    assert set(metrics["timings"]) >= {"dynamics_s", "filter_s"}
    assert metrics["averaged_over"] == {"cycles": 40, "first_cycle": 21, "trajectories": 1}
    assert 0.1 < metrics["rmse_a"] < 0.5  # a working LETKF on the Sakov-Oke setting
    ds = xr.open_dataset(out / "analysis.nc", engine="h5netcdf")
    assert ds["mean_a"].shape == (60, 40) and ds["obs"].shape == (60, 40)
    assert float(ds["rmse_a"][20:].mean()) == pytest.approx(metrics["rmse_a"])
    assert sorted(p.name for p in out.iterdir()) == ["analysis.nc", "metrics.json"]


def test_overrides_and_same_seed_same_numbers(tmp_path: Path) -> None:
    exp = str(write(tmp_path, GOOD))
    a = run_cli("run", exp, "--out", str(tmp_path / "a"), "--no-progress", "--set", "cycles=30")
    b = run_cli("run", exp, "--out", str(tmp_path / "b"), "--no-progress", "--set", "cycles=30")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    ma = json.loads((tmp_path / "a" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert ma["config"]["cycles"] == 30
    assert ma["rmse_a"] == mb["rmse_a"] and ma["crps_a"] == mb["crps_a"]


BAD = {
    "malformed": ("system: {name: lorenz96\nmethod: [", "malformed YAML"),
    "not a mapping": ("- a\n- b\n", "mapping"),
    "unknown top key": (GOOD + "cycels: 3\n", "unknown key 'cycels'"),
    "unknown nested key": (
        GOOD.replace("inflation: 1.04", "inflaton: 1.04"),
        "unknown key 'inflaton'; allowed: ensemble_size, inflation",
    ),
    "unknown method": (GOOD.replace("name: letkf", "name: kalman"), "unknown method 'kalman'"),
    "bad variant": (
        GOOD.replace(
            "name: letkf, ensemble_size: 20, inflation: 1.04, localization_radius: 4",
            "name: enkf, variant: square",
        ),
        "allowed: sqrt, stochastic",
    ),
    "negative ensemble": (GOOD.replace("ensemble_size: 20", "ensemble_size: -3"), "ensemble_size"),
    "negative cycles": (GOOD.replace("cycles: 60", "cycles: -1"), "cycles must be > 0"),
    "wrong type": (GOOD.replace("seed: 3", "seed: three"), "expected an integer"),
    "burn-in too long": (GOOD.replace("burn_in: 20", "burn_in: 60"), "burn_in"),
    "indices beyond dim": (
        GOOD.replace("operator: identity", "operator: subset, indices: [0, 40]"),
        "must lie in [0, 40)",
    ),
    "positions beyond dim": (
        GOOD.replace("operator: identity", "operator: interpolate, positions: [1.5, 52.0]"),
        "must lie in [0, 40)",
    ),
    "only NaN observations": (
        GOOD.replace("every: 1}", "every: 1, missing: 1.0}"),
        "every reading of all 60 cycles is missing",
    ),
    "unstable model": (GOOD.replace("dt: 0.05", "dt: 2.0"), "truth run became non-finite"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exit_2_one_line(tmp_path: Path, case: str) -> None:
    text, expected = BAD[case]
    res = run_cli("run", str(write(tmp_path, text)), "--out", str(tmp_path / "o"), "--no-progress")
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("latentda: error:"), res.stderr
    assert expected in lines[0]
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_missing_file_bad_override_unwritable_out(tmp_path: Path) -> None:
    res = run_cli("run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "no such file" in res.stderr
    exp = str(write(tmp_path, GOOD))
    res = run_cli("run", exp, "--out", str(tmp_path / "o"), "--set", "cycles")
    assert res.returncode == 2 and "KEY=VALUE" in res.stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = run_cli("run", exp, "--out", str(blocker / "sub"))
    assert res.returncode == 2 and "cannot write to" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = run_cli("run", exp)  # --out missing: a usage error, also exit 2
    assert res.returncode == 2


def test_interrupted_run_leaves_no_metrics(tmp_path: Path) -> None:
    exp = write(tmp_path, GOOD.replace("cycles: 60", "cycles: 1000000"))
    out = tmp_path / "o"
    proc = subprocess.Popen(
        [*CMD, "run", str(exp), "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        # Ctrl-C as a terminal delivers it: a suite started in the background (`make test &`)
        # hands its children SIGINT ignored, and Python then installs no KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 60
    while not out.exists() and time.time() < deadline:  # the run has started
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # never leave a run of 10^6 cycles behind
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert list(out.iterdir()) == []


def test_help_lists_commands() -> None:
    res = run_cli("--help")
    assert res.returncode == 0 and "run" in res.stdout and "demo" in res.stdout
