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
from latentda.observations.observer import Observer
from latentda.observations.schedule import EverySchedule, ObservationSchedule
from latentda.systems.base import System, integrate

#: Offsets giving each random stream its own seed, so that changing the method never changes
#: the truth or the observations (all methods see the same data for the same seed).
_STREAMS = {"truth": 0, "obs": 1, "init": 2, "filter": 3, "missing": 4}


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
        The analysis scheme.
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
    filter: Filter
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
        names = ("rmse_f", "rmse_a", "spread_f", "spread_a", "crps_a", "coverage90_a")
        scores: dict[str, list[Tensor]] = {k: [] for k in names}
        mean_f, mean_a, std_a = [], [], []
        t_dyn = t_filter = 0.0
        for c in tqdm(range(1, self.cycles + 1), disable=not progress, desc="cycles"):
            truth = data.truth[c]
            t0 = time.perf_counter()
            E = integrate(self.system, E, u, self.schedule.steps_before(c))
            t1 = time.perf_counter()
            scores["rmse_f"].append(metrics.rmse(E.mean(0), truth))
            scores["spread_f"].append(metrics.spread(E))
            mean_f.append(E.mean(0))
            t2 = time.perf_counter()
            E = self.filter.analysis(E, data.obs[c - 1], self.observer, g_filter)
            t3 = time.perf_counter()
            t_dyn += t1 - t0
            t_filter += t3 - t2
            if not bool(torch.isfinite(E).all()):
                raise FilterDivergence(
                    f"the ensemble became non-finite (NaN/Inf) at cycle {c} of {self.cycles}"
                )
            scores["rmse_a"].append(metrics.rmse(E.mean(0), truth))
            scores["spread_a"].append(metrics.spread(E))
            scores["crps_a"].append(metrics.crps(E, truth))
            scores["coverage90_a"].append(metrics.coverage(E, truth, 0.9))
            mean_a.append(E.mean(0))
            std_a.append(E.std(0))
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
            scores={k: torch.stack(v) for k, v in scores.items()},
            mean_f=torch.stack(mean_f),
            mean_a=torch.stack(mean_a),
            std_a=torch.stack(std_a),
            timings=timings,
            burn_in=self.burn_in,
        )
