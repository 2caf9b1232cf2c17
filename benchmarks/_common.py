"""Shared helpers of the benchmark scripts: machine description and result files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import torch

if TYPE_CHECKING:
    import xarray as xr

    from latentda.data.normalise import Normaliser
    from latentda.experiments.benchmark import BenchmarkConfig
    from latentda.experiments.field_config import Setting

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def best(fn: Callable[[], object], repeats: int, warmup: bool = True) -> float:
    """Fastest of ``repeats`` calls of ``fn`` in seconds, after one untimed call if
    ``warmup`` (first-call allocations and kernel selection out of the figure)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def save(name: str, payload: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/NAME.json`` (git-ignored) and return its path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"machine": machine(), "revision": git_revision(), **payload}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def busy_cores(seconds: float = 1.0) -> float:
    """CPU cores kept busy (user + system, all processes) over the next ``seconds``, from
    ``/proc/stat``; ``nan`` where it cannot be read."""

    def snap() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields[:8]) - idle, sum(fields[:8])

    try:
        b0, t0 = snap()
        time.sleep(seconds)
        b1, t1 = snap()
    except (OSError, ValueError, IndexError):
        return float("nan")
    return (b1 - b0) / max(t1 - t0, 1) * (os.cpu_count() or 1)


def wait_until_idle(
    threshold: float = 0.3, max_wait: float = 600.0, quiet: bool = False
) -> dict[str, float]:
    """Wait (at most ``max_wait`` s) until other processes keep fewer than ``threshold`` cores
    busy, so timings on a shared machine are not taken under someone else's load. Returns
    ``{"waited_s", "busy_cores"}`` (the last reading) for the result file."""
    import sys

    start = time.perf_counter()
    busy = busy_cores()
    while busy > threshold and time.perf_counter() - start < max_wait:
        if not quiet:
            print(f"    machine busy ({busy:.2f} cores), waiting ...", file=sys.stderr)
        time.sleep(5.0)
        busy = busy_cores()
    return {"waited_s": time.perf_counter() - start, "busy_cores": busy}


def fail(message: str) -> NoReturn:
    """Bad input to a benchmark script: ``message`` on one line of stderr, exit code 2."""
    import sys

    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def bench_setting(
    system: str, size: str, setting: str, cache: Path, generate: bool
) -> tuple[BenchmarkConfig, xr.Dataset, Normaliser, Setting]:
    """What ``latentda benchmark --system SYSTEM --size SIZE`` observes in ``setting``: its
    configuration, the store in ``cache`` (generated as the benchmark would if missing and
    ``generate``, else a one-line exit), the training split's normaliser and the setting."""
    from latentda.data import open_dataset
    from latentda.data.splits import load_split, normaliser_for
    from latentda.experiments.benchmark import Cache, benchmark_config
    from latentda.experiments.field_config import Setting

    cfg = benchmark_config(system, size)
    store = Cache(cache, False, print)
    path = store.dataset(cfg)[0] if generate else store.dataset_path(cfg)
    if not path.exists():
        fail(f"no store at {path}: run `latentda benchmark --system {system}` first")
    ds = open_dataset(path)
    normaliser = normaliser_for(ds, load_split(ds, "train"))
    return (
        cfg,
        ds,
        normaliser,
        Setting(setting, cfg.setting(setting), ds, normaliser, cfg.sensor_seed),
    )
