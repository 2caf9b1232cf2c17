"""The twin-experiment cycle: a hidden truth run, noisy observations of it, and an ensemble
that is forecast with the model and analysed by a filter whenever data arrive."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from latentda import metrics
from latentda.errors import DataError, FilterDivergence
from latentda.experiments.initial import AroundTruth, InitialEnsemble
from latentda.filters.base import Filter
from latentda.filters.envar import WindowBlock, WindowSmoother
from latentda.observations.observer import Observer
from latentda.observations.schedule import EverySchedule, ObservationSchedule
from latentda.systems.base import System, integrate

#: Offsets giving each random stream its own seed, so that changing the method never changes
#: the truth or the observations (all methods see the same data for the same seed).
_STREAMS = {"truth": 0, "obs": 1, "init": 2, "filter": 3, "missing": 4, "times": 5}


def stream(seed: int, name: str) -> torch.Generator:
    """An independent, reproducible generator for one named random stream."""
    return torch.Generator().manual_seed(1_000_003 * seed + _STREAMS[name])


@dataclass
class TwinData:
    """The hidden truth and its observations.

    Attributes
    ----------
    truth
        States at the start and at each observation time ``(C + 1, d)``.
    obs
        Observations ``(C, m)``; NaN marks a missing reading.
    steps
        Model step index of each observation time ``(C,)``.
    """

    truth: Tensor
    obs: Tensor
    steps: Tensor


@dataclass
class TwinResult:
    """Per-cycle scores ``(C,)``, ensemble fields ``(C, d)`` and wall-clock timings."""

    data: TwinData
    scores: dict[str, Tensor]
    mean_f: Tensor
    mean_a: Tensor
    std_a: Tensor
    timings: dict[str, float]
    burn_in: int

    def time_means(self) -> dict[str, float]:
        """Time means of the per-cycle scores over cycles after ``burn_in``."""
        return {k: float(v[self.burn_in :].mean()) for k, v in self.scores.items()}


@dataclass
class TwinExperiment:
    """A twin experiment of ``cycles`` analysis cycles.

    Parameters
    ----------
    system
        The model; it generates the truth and forecasts the members.
    observer
        Sensors and their noise.
    filter
        The analysis scheme: a :class:`Filter` analysing at each observation time, or a
        :class:`~latentda.filters.envar.WindowSmoother` assimilating windows of them.
    ensemble_size
        ``N``.
    cycles
        Number of observation times ``C``.
    schedule
        Which model steps are observed (default: every step).
    burn_in
        Cycles left out of time means.
    initial
        Initial-ensemble strategy.
    seed
        Seeds the truth, observation noise, initial ensemble and filter streams.
    missing
        Probability that a reading is missing (NaN) at an observation time.
    spinup
        Model steps run from the random initial truth before cycle 0.
    dtype
        Floating point type of states.
    """

    system: System
    observer: Observer
    filter: Filter | WindowSmoother
    ensemble_size: int
    cycles: int
    schedule: ObservationSchedule = field(default_factory=EverySchedule)
    burn_in: int = 0
    initial: InitialEnsemble = field(default_factory=AroundTruth)
    seed: int = 0
    missing: float = 0.0
    spinup: int = 1000
    dtype: torch.dtype = torch.float64

    def make_data(self) -> TwinData:
        """Run the truth and observe it (depends only on the system, observer and seed)."""
        g_truth, g_obs = stream(self.seed, "truth"), stream(self.seed, "obs")
        g_missing = stream(self.seed, "missing")
        u = self.system.sample_params(1, g_truth)
        x = self.system.initial_state(u, g_truth).to(self.dtype)
        x = integrate(self.system, x, u, self.spinup)
        truth, obs, steps = [x[0]], [], []
        for c in range(1, self.cycles + 1):
            x = integrate(self.system, x, u, self.schedule.steps_before(c))
            y = self.observer.observe(x[0], g_obs)
            if self.missing > 0:
                drop = torch.rand(y.shape, generator=g_missing) < self.missing
                y = torch.where(drop, torch.full_like(y, float("nan")), y)
            truth.append(x[0])
            obs.append(y)
            steps.append(self.schedule.step_of_cycle(c))
        data = TwinData(torch.stack(truth), torch.stack(obs), torch.tensor(steps))
        if not bool(torch.isfinite(data.truth).all()):
            bad = int(torch.nonzero(~torch.isfinite(data.truth).all(-1))[0])
            raise DataError(
                f"the truth run became non-finite at cycle {bad}: the model is unstable "
                "with this time step"
            )
        if not torch.isfinite(data.obs).any():
            raise DataError(
                f"observations: every reading of all {self.cycles} cycles is missing (NaN); "
                "nothing to assimilate"
            )
        return data

    def run(self, data: TwinData | None = None, progress: bool = False) -> TwinResult:
        """Cycle the ensemble through all observation times and score it against the truth."""
        t_start = time.perf_counter()
        data = self.make_data() if data is None else data
        t_truth = time.perf_counter() - t_start
        g_init, g_filter = stream(self.seed, "init"), stream(self.seed, "filter")
        n = self.ensemble_size
        E = self.initial.sample(data.truth[0], n, self.system, g_init).to(self.dtype)
        u = self.system.sample_params(n, g_init)
        rec = _Recorder(self.cycles)
        if isinstance(self.filter, WindowSmoother):
            t_dyn, t_filter = self._cycle_windows(self.filter, E, u, data, rec, g_filter, progress)
        else:
            t_dyn, t_filter = self._cycle_filter(self.filter, E, u, data, rec, g_filter, progress)
        t_end = time.perf_counter()
        timings = {
            "dynamics_s": t_dyn,
            "filter_s": t_filter,
            "truth_s": t_truth,
            "cycling_s": t_end - t_start - t_truth,  # forecasts + analyses + scoring
            "total_s": t_end - t_start,
        }
        return TwinResult(
            data=data,
            scores={k: torch.stack(v) for k, v in rec.scores.items()},
            mean_f=torch.stack(rec.mean_f),
            mean_a=torch.stack(rec.mean_a),
            std_a=torch.stack(rec.std_a),
            timings=timings,
            burn_in=self.burn_in,
        )

    def _cycle_filter(
        self,
        flt: Filter,
        E: Tensor,
        u: Tensor,
        data: TwinData,
        rec: _Recorder,
        gen: torch.Generator,
        progress: bool,
    ) -> tuple[float, float]:
        """Forecast to each observation time and analyse there; returns (dynamics, filter) s."""
        t_dyn = t_filter = 0.0
        for c in tqdm(range(1, self.cycles + 1), disable=not progress, desc="cycles"):
            t0 = time.perf_counter()
            E = integrate(self.system, E, u, self.schedule.steps_before(c))
            t1 = time.perf_counter()
            rec.forecast(E, data.truth[c])
            t2 = time.perf_counter()
            E = flt.analysis(E, data.obs[c - 1], self.observer, gen)
            t3 = time.perf_counter()
            t_dyn += t1 - t0
            t_filter += t3 - t2
            rec.analysis(E, data.truth[c], c)
        return t_dyn, t_filter

    def _cycle_windows(
        self,
        smoother: WindowSmoother,
        E: Tensor,
        u: Tensor,
        data: TwinData,
        rec: _Recorder,
        gen: torch.Generator,
        progress: bool,
    ) -> tuple[float, float]:
        """Cycle a window smoother (see :func:`~latentda.filters.envar.window_blocks`).

        Per observation time ``c`` the forecast is the window's background forecast to ``c``
        and the analysis is the window-start analysis forecast to ``c``. At the window end this
        is the filtering analysis, which is what DAPPER scores as the iEnKS ``rmse.a`` (its
        shift is 1, so every time is a window end); with ``shift > 1`` the earlier new times
        of a window also use the window's later readings. ``gn_iterations`` records the
        Gauss–Newton steps of the window each time belongs to. Returns (dynamics, filter) s,
        the model runs inside the Gauss–Newton iterations counted as dynamics.
        """
        t_dyn = t_filter = 0.0

        def step_of(c: int) -> int:
            return 0 if c == 0 else self.schedule.step_of_cycle(c)

        def run(X: Tensor, start: int, end: int) -> list[Tensor]:
            """States at observation times start+1..end from X at time start."""
            nonlocal t_dyn
            t0 = time.perf_counter()
            out = []
            for c in range(start + 1, end + 1):
                X = integrate(self.system, X, u, step_of(c) - step_of(c - 1))
                out.append(X)
            t_dyn += time.perf_counter() - t0
            return out

        blocks = smoother.blocks(self.cycles)
        for j, block in enumerate(tqdm(blocks, disable=not progress, desc="windows")):
            skip = block.first - block.start - 1  # window times before the new ones

            def propagate(X: Tensor, b: WindowBlock = block, skip: int = skip) -> list[Tensor]:
                return run(X, b.start, b.end)[skip:]

            t0, dyn0 = time.perf_counter(), t_dyn
            ys = data.obs[block.first - 1 : block.end]
            res = smoother.analyse(E, propagate, ys, self.observer, gen)
            t_filter += time.perf_counter() - t0 - (t_dyn - dyn0)
            states = [res.ensemble, *run(res.ensemble, block.start, block.end)]
            for c, forecast in zip(block.new, res.background, strict=True):
                rec.forecast(forecast, data.truth[c])
                rec.analysis(states[c - block.start], data.truth[c], c)
                rec.scores.setdefault("gn_iterations", []).append(
                    torch.tensor(float(res.iterations))
                )
            if j + 1 < len(blocks):
                E = states[blocks[j + 1].start - block.start]
        return t_dyn, t_filter


class _Recorder:
    """Per-cycle scores and ensemble fields, shared by the filter and smoother loops."""

    def __init__(self, cycles: int) -> None:
        self.cycles = cycles
        names = ("rmse_f", "rmse_a", "spread_f", "spread_a", "crps_a", "coverage90_a")
        self.scores: dict[str, list[Tensor]] = {k: [] for k in names}
        self.mean_f: list[Tensor] = []
        self.mean_a: list[Tensor] = []
        self.std_a: list[Tensor] = []

    def forecast(self, E: Tensor, truth: Tensor) -> None:
        self.scores["rmse_f"].append(metrics.rmse(E.mean(0), truth))
        self.scores["spread_f"].append(metrics.spread(E))
        self.mean_f.append(E.mean(0))

    def analysis(self, E: Tensor, truth: Tensor, cycle: int) -> None:
        if not bool(torch.isfinite(E).all()):
            raise FilterDivergence(
                f"the ensemble became non-finite (NaN/Inf) at cycle {cycle} of {self.cycles}"
            )
        self.scores["rmse_a"].append(metrics.rmse(E.mean(0), truth))
        self.scores["spread_a"].append(metrics.spread(E))
        self.scores["crps_a"].append(metrics.crps(E, truth))
        self.scores["coverage90_a"].append(metrics.coverage(E, truth, 0.9))
        self.mean_a.append(E.mean(0))
        self.std_a.append(E.std(0))
