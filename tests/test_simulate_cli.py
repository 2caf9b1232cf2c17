"""`latentda simulate` / `plot` through the real entry point: resume after a killed run,
two torchrun ranks, bad input. Uses the real Kolmogorov solver at `ci` size."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from latentda.data import open_dataset

BIN = Path(sys.executable).parent
CMD = [str(BIN / "latentda")] if (BIN / "latentda").exists() else [sys.executable, "-m", "latentda"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
SIM = ["simulate", "--system", "kolmogorov", "--size", "ci", "--seed", "5", "--no-progress"]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=timeout, env=ENV)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted 3-trajectory store, generated in one process."""
    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    res = run_cli(*SIM, "--trajectories", "3", "--out", str(out))
    assert res.returncode == 0, res.stderr
    return out


def test_store_contents(reference: Path) -> None:
    ds = open_dataset(reference)
    assert ds["fields"].dims == ("trajectory", "time", "channel", "y", "x")
    assert ds["fields"].shape == (3, 40, 2, 32, 32)
    assert list(ds["channel"].values) == ["u", "v"]
    assert list(ds["param"].values) == ["reynolds"]
    assert ((ds["params"].values >= 500) & (ds["params"].values <= 1500)).all()
    assert np.isfinite(ds["fields"].values).all()
    assert "kolmogorov" in ds.attrs["latentda"]


def test_resume_after_kill_equals_uninterrupted(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / "s.zarr"
    args = [*CMD, *SIM, "--trajectories", "3", "--out", str(out)]
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline:  # wait until the first trajectory is stored, then kill
        try:
            if zarr.open_group(str(out), mode="r")["done"][0]:
                break
        except Exception:  # noqa: BLE001 - the store may not exist yet
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    flags = np.asarray(zarr.open_group(str(out), mode="r")["done"][:])
    assert flags[0] and not flags.all(), "the kill came too late to test resumption"
    res = run_cli(*SIM, "--trajectories", "3", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert f"{int(flags.sum())} already present" in res.stdout
    np.testing.assert_array_equal(
        open_dataset(out)["fields"].values, open_dataset(reference)["fields"].values
    )


def test_two_ranks_equal_one(tmp_path: Path, reference: Path) -> None:
    torchrun = BIN / "torchrun"
    if not torchrun.exists():
        pytest.skip("torchrun not installed next to this interpreter")
    out = tmp_path / "two.zarr"
    res = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "latentda",
            *SIM,
            "--trajectories",
            "3",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    np.testing.assert_array_equal(
        open_dataset(out)["fields"].values, open_dataset(reference)["fields"].values
    )


def test_plot_and_bad_input(tmp_path: Path, reference: Path) -> None:
    fig = tmp_path / "f.png"
    res = run_cli("plot", str(reference), "--trajectory", "1", "--frame", "39", "--out", str(fig))
    assert res.returncode == 0, res.stderr
    assert fig.read_bytes()[:4] == b"\x89PNG"
    cases = [
        (
            ["simulate", "--system", "nope", "--trajectories", "1", "--out", "x.zarr"],
            "unknown system",
        ),
        (
            [
                "simulate",
                "--system",
                "kolmogorov",
                "--size",
                "huge",
                "--trajectories",
                "1",
                "--out",
                "x.zarr",
            ],
            "unknown size",
        ),
        (
            [
                "simulate",
                "--system",
                "kolmogorov",
                "--trajectories",
                "-2",
                "--out",
                str(tmp_path / "n.zarr"),
            ],
            "--trajectories must be >= 1",
        ),
        (
            [*SIM, "--trajectories", "3", "--seed", "6", "--out", str(reference)],
            "written by another configuration",
        ),
        ([*SIM, "--trajectories", "1", "--out", "/proc/forbidden.zarr"], "cannot write to"),
        (
            [*SIM, "--trajectories", "1", "--set", "bogus=1", "--out", str(tmp_path / "b.zarr")],
            "unknown kolmogorov option(s) ['bogus']",
        ),
        (["plot", str(reference), "--frame", "99", "--out", str(fig)], "--frame must lie in"),
        (["plot", str(tmp_path / "missing.zarr"), "--out", str(fig)], "no such dataset"),
    ]
    for args, expected in cases:
        res = run_cli(*args)
        assert res.returncode == 2, (args, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (args, res.stderr)
