"""Running one field method on cases and summarising the scores (shared by ``latentda run``
on a stored dataset and ``latentda benchmark``).

:func:`attempt` runs and scores a method on one :class:`~.field_twin.TwinCase`, keeping a
:class:`Trace` of what outputs need (ensemble mean and spread of the fields, the parameter
ensemble) and recording a diverged filter instead of raising; :func:`summarise` turns the
outcomes of many cases into mean ± std over trajectories.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from latentda.errors import DataError, FilterDivergence
from latentda.experiments.field_twin import (
    FieldMethod,
    FieldTwinResult,
    MethodRun,
    TwinCase,
    run_method,
)


@dataclass
class Trace:
    """What outputs need of one run, physical units.

    Attributes
    ----------
    final_mean
        Ensemble mean at the final frame ``(C, H, W)``.
    params
        Parameter ensemble ``(T, N, p)``.
    mean, std
        Ensemble mean and standard deviation (``ddof = 1``) of the fields at every frame
        ``(T, C, H, W)`` float32, kept only when asked (``Traced(keep_frames=True)``).
    """

    final_mean: Tensor
    params: Tensor
    mean: Tensor | None = None
    std: Tensor | None = None


class Traced(FieldMethod):
    """A method whose run also keeps a :class:`Trace`, taken while :func:`run_method`
    decodes each frame for scoring, so nothing is decoded twice.

    Parameters
    ----------
    inner
        The method.
    keep_frames
        Also keep the mean and spread of every frame (``latentda run`` writes them);
        otherwise only the final frame's mean (the benchmark's figures).
    """

    def __init__(self, inner: FieldMethod, keep_frames: bool = False) -> None:
        self.inner, self.keep_frames = inner, keep_frames
        self.trace: Trace | None = None

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    def run(self, case: TwinCase, gen: torch.Generator) -> MethodRun:
        run = self.inner.run(case, gen)
        last = case.n_frames - 1
        means: list[Tensor] = []
        stds: list[Tensor] = []

        def members(t: int) -> Tensor:
            m = run.members(t)
            if self.keep_frames:
                means.append(m.double().mean(0).float())
                stds.append(m.double().std(0).float())
            if t == last:
                self.trace = Trace(
                    m.double().mean(0),
                    run.params.double(),
                    torch.stack(means) if self.keep_frames else None,
                    torch.stack(stds) if self.keep_frames else None,
                )
            return m

        return dataclasses.replace(run, members=members)


@dataclass
class Outcome:
    """One method on one case: its result, or why it stopped (a diverged filter)."""

    result: FieldTwinResult | None
    trace: Trace | None
    error: str | None = None


def attempt(method: FieldMethod, case: TwinCase, keep_frames: bool = False) -> Outcome:
    """:func:`run_method` with a :class:`Traced` method (``keep_frames`` as there), a
    diverging ensemble, or a case the method cannot read (e.g. moving sensors for a
    fixed-order encoder), recorded instead of ending the run."""
    traced = Traced(method, keep_frames)
    try:
        result = run_method(traced, case)
    except FilterDivergence as exc:
        return Outcome(None, None, str(exc))
    except DataError as exc:
        return Outcome(None, None, f"cannot run this case: {exc}")
    if not all(bool(torch.isfinite(v).all()) for v in result.scores.values()):
        return Outcome(None, None, "non-finite scores")
    return Outcome(result, traced.trace)


def summarise(
    outcomes: dict[tuple[int, int], Outcome], full_order_s: float | None = None
) -> dict[str, Any]:
    """Scores of one method over ``outcomes[(position, seed)]``: each trajectory's time-mean
    and final-frame scores averaged over its seeds, then mean and std (``ddof = 1``; 0 for
    one trajectory) over trajectories; timings are means per run. ``full_order_s`` (the
    full-order model's seconds for the same forecasts) gives ``dynamics_speedup``."""
    done = {k: o.result for k, o in outcomes.items() if o.result is not None}
    errors = sorted({o.error for o in outcomes.values() if o.error})
    summary: dict[str, Any] = {
        "n_runs": len(outcomes),
        "n_finished": len(done),
        "errors": errors,
    }
    if not done:
        return summary
    positions = sorted({p for p, _ in done})
    results = list(done.values())

    def stat(pick: Callable[[FieldTwinResult], dict[str, float]], key: str) -> dict[str, float]:
        per_traj = [
            float(np.mean([pick(r)[key] for (p, _), r in done.items() if p == pos]))
            for pos in positions
        ]
        std = float(np.std(per_traj, ddof=1)) if len(per_traj) > 1 else 0.0
        return {"mean": float(np.mean(per_traj)), "std": std}

    for key in ("rel_rmse", "rmse", "spread", "crps", "coverage90", "param_rel_error"):
        summary[key] = {
            "time_mean": stat(FieldTwinResult.time_means, key),
            "final": stat(FieldTwinResult.final, key),
        }
    # Spread-skill ratio: mean spread over mean RMSE of the ensemble mean (1 for a
    # calibrated ensemble, up to the finite-N factor √((N+1)/N)); at the final frame, the
    # ratio there.
    summary["spread_skill"] = {
        "time_mean": stat(lambda r: _ratio(r.time_means()), "ratio"),
        "final": stat(lambda r: _ratio(r.final()), "ratio"),
    }
    timings = {k: float(np.mean([r.timings[k] for r in results])) for k in results[0].timings}
    frames = torch.stack([r.scores["rel_rmse"] for r in results])  # (runs, T)
    dyn = timings.get("dynamics_s", 0.0)
    summary.update(
        {
            "n_trajectories": len(positions),
            "timings": timings,
            "latent_dim": results[0].latent_dim,
            "dynamics_speedup": full_order_s / dyn if full_order_s and dyn > 0 else None,
            # Mean over runs: with random observation times each seed has its own count.
            "n_observed_frames": float(np.mean([r.n_observed for r in results])),
            "rel_rmse_per_frame": {
                "mean": frames.mean(0).tolist(),
                "std": (
                    frames.std(0) if len(results) > 1 else torch.zeros_like(frames[0])
                ).tolist(),
            },
        }
    )
    recorded = [r for r in results if r.gn_iterations]
    if recorded:
        # Runs saved before the counts were recorded have none: say over how many runs.
        windows = [i for r in recorded for i in r.gn_iterations]
        summary["gn_iterations"] = {
            "mean": float(np.mean(windows)),
            "max": max(windows),
            "windows": len(windows),
            "runs": len(recorded),
        }
    return summary


def _ratio(scores: dict[str, float]) -> dict[str, float]:
    """``{"ratio": spread / rmse}`` of one run's scores (inf for an exact mean)."""
    return {"ratio": scores["spread"] / scores["rmse"] if scores["rmse"] > 0 else math.inf}
