"""Ensemble-variational smoothers (DESIGN 6.5) in the field twin experiment: LEVDA through a
trained LDNet and full-state 4DEnVar through the solver.

Both assimilate windows of ``window`` observation times (the frames with at least one
present reading, in order) and are cycled by :func:`~latentda.filters.envar.cycle_windows`:
the first window's control sits at frame 0 (the prior; a reading at frame 0 enters through
a zero-length forecast), each later one at the last observation time of the window before.
**The ensemble at frame t** is the window-start analysis of the window whose span holds
``t`` forecast to ``t`` (spans ``[0, e_0]``, ``(e_{j−1}, e_j]`` with ``e_j`` the window's last
observation time, the last one extended to the final frame): at window ends this is the
filtering analysis, as DAPPER scores the iEnKS and :class:`~latentda.filters.envar.FourDEnVar`'s
Lorenz-96 twin loop does; frames inside a window also use the window's later readings.

Timings follow DESIGN 7. LEVDA: ``dynamics_s`` the latent forecasts of the analysed
ensemble through the frames, ``filter_s`` the Gauss–Newton minimisation (its latent rollouts
and decoding at the sensors with their Jacobians cannot be told apart, and both are the
analysis's own cost), ``reconstruction_s`` the decoding on the grid. 4DEnVar: ``dynamics_s``
every solver step, including the ensemble runs inside the Gauss–Newton iterations (as in
the Lorenz-96 twin loop), ``filter_s`` the rest of the analyses, ``spinup_s`` the prior's
spin-up to frame 0 apart.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import Tensor

from latentda.errors import DataError
from latentda.experiments.field_methods import SolverModel, sensor_context
from latentda.experiments.field_twin import FieldMethod, MethodRun, TwinCase, latent_members
from latentda.filters.ensemble import check_finite, clip_params
from latentda.filters.envar import FourDEnVar, WindowBlock, cycle_windows
from latentda.filters.ldensf import LatentSurrogate, check_readings
from latentda.filters.levda import LEVDA, LatentReadings
from latentda.observations.observer import present_mask


@dataclass(frozen=True, eq=False)
class LEVDAMethod(FieldMethod):
    """LEVDA (:class:`~latentda.filters.levda.LEVDA`) with a trained LDNet, reading the
    case's sensors directly through the reconstruction net (no encoder: any sensor layout
    is accepted, and sensors that move are read at each frame's positions).

    Each frame with a present reading is one observation time; the readings are z-scored
    with the surrogate's training normaliser and the noise std ``σ_c`` becomes ``σ_c/s_c``
    (to which :attr:`LEVDA.model_error` adds the LDNet's own error).

    ``model_error=True`` (the default) scores members of the predictive distribution, the
    decoded members plus a centred draw of the LDNet's error, as
    :class:`~latentda.experiments.field_twin.LDEnSFMethod` does
    (:func:`~latentda.surrogates.model_error.predictive_members`). It is independent of
    ``smoother.model_error``, which changes the analysis, not the scored fields.
    """

    surrogate: LatentSurrogate
    smoother: LEVDA = field(default_factory=LEVDA)
    model_error: bool = True

    @property
    def name(self) -> str:  # type: ignore[override]
        return "levda"

    def run(self, case: TwinCase, gen: torch.Generator) -> MethodRun:
        sur = self.surrogate
        check_readings(case.readings, case.points.shape[-2], sur.ldnet.n_channels)
        moving = case.points.ndim == 3  # (T, S, 2): each frame read where its sensors are
        readings = [
            LatentReadings.from_physical(
                sur, t, case.points[t] if moving else case.points, case.readings[t], case.noise_std
            )
            for t in range(case.n_frames)
        ]
        result = self.smoother.assimilate(sur, readings, case.n_frames, gen)
        return MethodRun(
            members=latent_members(result, case, self.model_error, self.name),
            params=result.params,
            timings=result.timings,
            n_observed=result.n_observed,
            latent_dim=sur.state_dim,
            gn_iterations=tuple(w.iterations for w in result.windows),
        )


@dataclass(frozen=True, eq=False)
class FourDEnVarFieldMethod(FieldMethod):
    """Full-state 4DEnVar (:class:`~latentda.filters.envar.FourDEnVar`) on the augmented
    state ``[x̃, ũ]`` (z-scored fields, parameters in ``[-1, 1]``), forecast by the solver
    from the same prior ensemble as the full-space filters, observed bilinearly at the
    sensors (:func:`~latentda.experiments.field_methods.sensor_context`). Parameters are
    estimated through the window's ensemble covariance with the readings and clipped to
    ``[-1, 1]`` (the solver may be unstable outside).

    Parameters
    ----------
    model
        The solver and normaliser (:meth:`SolverModel.from_dataset`).
    smoother
        Window length, shift, iterations, inflation.
    ensemble_size
        ``N``.
    clip_params
        Project the analysed ``ũ`` onto ``[-1, 1]^p``, and run the solver with the members'
        ``ũ`` clipped there inside the Gauss–Newton iterations too, where the members
        ``κ̄ + X(w + √(N−1) T_i)`` may leave it (the window Jacobian is then read off the
        clipped runs).
    """

    model: SolverModel
    smoother: FourDEnVar = field(default_factory=FourDEnVar)
    ensemble_size: int = 20
    clip_params: bool = True

    @property
    def name(self) -> str:  # type: ignore[override]
        return "4denvar"

    def run(self, case: TwinCase, gen: torch.Generator) -> MethodRun:
        m = self.model
        shape = m.field_shape
        if case.truth.shape[1:] != shape or case.readings.shape[2] != shape[0]:
            raise DataError(
                f"case fields {tuple(case.truth.shape[1:])} and readings "
                f"{tuple(case.readings.shape)} do not fit the solver's fields {shape}"
            )
        context = sensor_context(m, case)
        frames = torch.nonzero(present_mask(context.y).any(1)).flatten().tolist()
        timings = {"dynamics_s": 0.0, "filter_s": 0.0, "reconstruction_s": 0.0}
        t0 = time.perf_counter()
        x, u, time0 = m.prior(self.ensemble_size, gen)
        timings["spinup_s"] = time.perf_counter() - t0
        check_finite(x, 0, "spin-up", self.name)
        system, d = m.system, m.state_dim - m.n_params

        def roll(E: Tensor, start: float, targets: Sequence[float]) -> list[Tensor]:
            """Solver steps of whole frames from frame ``start`` to each target frame."""
            t0 = time.perf_counter()
            if self.clip_params:  # Gauss–Newton members may leave the prior's support
                E = clip_params(E, d)
            x, u = m.from_filter(E)
            k, out = round(start), []
            for target in targets:
                while k < round(target):
                    x = system.step(x, u, system.frame_dt, time0 + k * system.frame_dt)
                    k += 1
                    check_finite(x, k, "forecast", self.name)
                out.append(m.to_filter(x, u))
            timings["dynamics_s"] += time.perf_counter() - t0
            return out

        def analyse(E: Tensor, start: float, block: WindowBlock) -> tuple[Tensor, int]:
            at = [frames[i - 1] for i in block.new]
            new, ys = [float(f) for f in at], context.y[at]
            observers = [context.observer(f) for f in at]  # moving sensors: one per time
            t0, dyn0 = time.perf_counter(), timings["dynamics_s"]
            res = self.smoother.analyse(E, lambda X: roll(X, start, new), ys, observers, gen)
            Ea = res.ensemble
            if self.clip_params:
                Ea = clip_params(Ea, d)
            timings["filter_s"] += time.perf_counter() - t0 - (timings["dynamics_s"] - dyn0)
            check_finite(Ea, round(start), "analysis", self.name)
            return Ea, res.iterations

        times = [float(f) for f in frames]
        blocks = self.smoother.blocks(len(frames))
        cyc = cycle_windows(blocks, times, case.n_frames, m.to_filter(x, u), analyse, roll)
        # float32 as SolverMethod keeps its members: half the memory, far below the scores.
        states = [m.from_filter(E) for E in cyc.frames]
        members = torch.stack([s[0] for s in states]).float()
        params = torch.stack([s[1] for s in states])
        return MethodRun(
            members=lambda t: members[t],
            params=params,
            timings=timings,
            n_observed=len(frames),
            latent_dim=m.state_dim,
            gn_iterations=tuple(cast(int, i) for i in cyc.analyses),  # analyse()'s counts
        )
