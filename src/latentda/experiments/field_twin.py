"""Twin experiment on a stored field trajectory: observe a test trajectory of a field system,
assimilate the readings, and score the ensemble against the stored truth (DESIGN 7).

The truth is a trajectory of the dataset's test split, so only the observation noise is
random; it comes from its own stream (:func:`~latentda.experiments.twin.stream`), so every
method sees the same readings for the same seed, whatever its own randomness.

One loop serves every method: :func:`make_case` observes a trajectory into a
:class:`TwinCase`, a :class:`FieldMethod` (strategy object) turns it into a
:class:`MethodRun` (members decoded on demand, parameters, split timings), and
:func:`run_method` scores it against the truth frame by frame.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import xarray as xr
from torch import Tensor

from latentda import metrics
from latentda.data.normalise import Normaliser
from latentda.data.splits import load_split
from latentda.errors import DataError
from latentda.experiments.twin import stream
from latentda.filters.ldensf import LatentSurrogate, LatentTrajectory, LDEnSF
from latentda.observations.sensors import SensorConfig
from latentda.surrogates.model_error import predictive_members
from latentda.surrogates.sensing import Geometry, noisy

#: Central interval of the coverage score.
COVERAGE_LEVEL = 0.9


def observe(
    truth: Tensor,
    geometry: Geometry,
    normaliser: Normaliser,
    noise_level: float,
    every: int,
    missing: float,
    gen: torch.Generator,
    points: Tensor | None = None,
    observed: Tensor | None = None,
) -> Tensor:
    """Noisy sensor readings of a true trajectory.

    Parameters
    ----------
    truth
        True fields ``(T, C, H, W)`` in physical units.
    geometry
        Grid of the dataset; reads at its sensors unless ``points`` is given.
    normaliser
        Its ``channel_std`` ``(C,)`` (the training split's, as the surrogate was trained)
        scales the noise: ``σ_c = noise_level · std_c``.
    noise_level
        Noise std as a fraction of each channel's std.
    every
        Frame ``t`` is observed iff ``t % every == 0`` (unless ``observed`` is given).
    missing
        Probability that one sensor's reading (all its channels) at one frame is missing.
    gen
        The only source of randomness (noise, then missing readings).
    points
        Sensor coordinates in grid units instead of ``geometry.points``: ``(S, 2)``, or
        ``(T, S, 2)`` for sensors that move (frame ``t`` read at ``points[t]``).
    observed
        ``(T,)`` bool: the observed frames, instead of every ``every``-th.

    Returns
    -------
    Tensor
        Readings ``(T, S, C)`` float64 in physical units; NaN at unobserved frames and
        missing readings.
    """
    if every < 1:
        raise DataError(f"every must be >= 1, got {every}")
    if points is not None and points.ndim == 3:
        if len(points) != len(truth):
            raise DataError(f"{len(points)} sensor positions for {len(truth)} frames")
        clean = torch.stack([geometry.read(truth[t], points[t]) for t in range(len(truth))])
    else:
        clean = geometry.read(truth, points)  # (T, S, C)
    clean = clean.double()
    # Noise is added in normalised units by the same function the encoder trainer uses, so
    # the test-time noise model is exactly the training one. Noise is drawn at every frame,
    # then unobserved frames blanked: a frame's noise does not depend on ``every``.
    y = normaliser.denormalise_fields(
        noisy(normaliser.normalise_fields(clean, -1), noise_level, missing, gen), -1
    )
    unobserved = torch.arange(len(y)) % every != 0 if observed is None else ~observed
    return y.masked_fill(unobserved[:, None, None], float("nan"))


def random_frames(n_frames: int, every: int, gen: torch.Generator) -> Tensor:
    """``(T,)`` bool: frame 0 and each later frame with probability ``1/every`` (irregular
    observation times at the mean rate of every ``every``-th frame)."""
    observed = torch.rand(n_frames, generator=gen, dtype=torch.float64) < 1.0 / every
    observed[0] = True
    return observed


def score(
    ensembles: Iterable[Tensor], truth: Tensor, params: Tensor, true_params: Tensor
) -> dict[str, Tensor]:
    """Per-frame scores of an ensemble of fields and parameters against the truth.

    Parameters
    ----------
    ensembles
        Member fields of each frame, each ``(N, C, H, W)`` in physical units: a tensor
        ``(T, N, C, H, W)`` or, to hold one frame in memory at a time, an iterator.
    truth
        True fields ``(T, C, H, W)``.
    params
        Parameter ensemble ``(T, N, p)`` in physical units.
    true_params
        True parameters ``(p,)``.

    Returns
    -------
    dict[str, Tensor]
        ``(T,)`` float64 each: ``rel_rmse`` (of the ensemble mean, DESIGN 5.1, over space and
        channels), ``rmse``, ``spread``, ``crps``, ``coverage90`` (grid points and channels
        whose truth lies in the members' central 90 % interval) and ``param_rel_error``
        (``|mean_j û_j − u| / |u|``, averaged over the ``p`` parameters so each counts
        equally whatever its units; infinite if a true parameter is 0).
    """
    names = ("rel_rmse", "rmse", "spread", "crps", "coverage90")
    out: dict[str, list[Tensor]] = {k: [] for k in names}
    n_frames = 0
    for t, members in enumerate(ensembles):
        if t >= len(truth):
            raise DataError(f"more ensemble frames than the {len(truth)} truth frames")
        E, x = members.double().flatten(1), truth[t].double().flatten()  # (N, d), (d,)
        out["rel_rmse"].append(metrics.relative_rmse(E.mean(0), x))
        out["rmse"].append(metrics.rmse(E.mean(0), x))
        out["spread"].append(metrics.spread(E))
        out["crps"].append(metrics.crps(E, x))
        out["coverage90"].append(metrics.coverage(E, x, COVERAGE_LEVEL))
        n_frames = t + 1
    if n_frames != len(truth) or params.shape[0] != len(truth):
        raise DataError(
            f"{n_frames} ensemble frames and {params.shape[0]} parameter frames for "
            f"{len(truth)} truth frames"
        )
    param_err = metrics.param_relative_error(params.double().mean(1), true_params)
    return {**{k: torch.stack(v) for k, v in out.items()}, "param_rel_error": param_err}


@dataclass
class FieldTwinResult:
    """Scores of one assimilated trajectory.

    Attributes
    ----------
    scores
        Per-frame scores ``(T,)`` (see :func:`score`).
    timings
        Seconds: ``dynamics_s`` (latent or full-order steps), ``filter_s`` (analyses),
        ``reconstruction_s`` (decoding every member on the grid at every frame for scoring),
        as DESIGN 7 splits them.
    n_frames
        ``T``.
    n_observed
        Frames with at least one present reading (0 for the no-assimilation reference).
    n_sensors
        ``S``.
    latent_dim
        Dimension of the filter state (``d_s + p`` for LD-EnSF).
    gn_iterations
        Gauss–Newton iterations of each analysed window, in order (window smoothers;
        empty for filters).
    """

    scores: dict[str, Tensor]
    timings: dict[str, float]
    n_frames: int
    n_observed: int
    n_sensors: int
    latent_dim: int
    gn_iterations: tuple[int, ...] = ()

    def time_means(self) -> dict[str, float]:
        """Mean of every score over all frames."""
        return {k: float(v.mean()) for k, v in self.scores.items()}

    def final(self) -> dict[str, float]:
        """Every score at the last frame."""
        return {k: float(v[-1]) for k, v in self.scores.items()}


def stored_trajectory(
    ds: xr.Dataset, trajectory_index: int, split: str = "test"
) -> tuple[Tensor, Tensor]:
    """Fields ``(T, C, H, W)`` and parameters ``(p,)`` (physical units) of one trajectory of
    ``split`` (``test``; ``val`` for tuning), ``trajectory_index`` counting within it."""
    one = load_split(ds, split, [trajectory_index])
    return one.fields[0], one.params[0]


@dataclass(frozen=True, eq=False)
class TwinCase:
    """One test trajectory and its noisy readings: what every method is given.

    Attributes
    ----------
    ds
        Store holding the trajectory (methods may read the grid, the system's config and the
        prior from it, never the other test trajectories or the truth below).
    trajectory_index
        Position within the test split.
    truth
        True fields ``(T, C, H, W)``, physical units; for scoring only.
    true_params
        True parameters ``(p,)``; for scoring only.
    readings
        ``(T, S, C)`` float64 in physical units, NaN at unobserved frames and missing readings.
    points
        Sensor coordinates in grid units (the dataset's axes): ``(S, 2)``, or ``(T, S, 2)``
        for sensors that move.
    noise_std
        Observation noise std per channel ``(C,)`` in physical units, as drawn.
    seed
        The seed of the readings; methods draw their own randomness from
        ``stream(seed, "filter")`` so that they are reproducible and independent of it.
    split
        The split holding the trajectory: ``test``, or ``val`` when tuning a method's knobs.
    """

    ds: xr.Dataset
    trajectory_index: int
    truth: Tensor
    true_params: Tensor
    readings: Tensor
    points: Tensor
    noise_std: Tensor
    seed: int
    split: str = "test"

    @property
    def n_frames(self) -> int:
        return self.truth.shape[0]


def make_case(
    ds: xr.Dataset,
    trajectory_index: int,
    points: Tensor,
    normaliser: Normaliser,
    noise_level: float,
    every: int = 1,
    missing: float = 0.0,
    seed: int = 0,
    split: str = "test",
    random_times: bool = False,
) -> TwinCase:
    """Observe trajectory ``trajectory_index`` of ``split`` (``test``; ``val`` for tuning) at
    ``points`` (grid units; ``(S, 2)``, or ``(T, S, 2)`` for moving sensors) with noise
    ``noise_level · normaliser.channel_std`` (see :func:`observe`), from
    ``stream(seed, "obs")``: the same ``seed`` gives every method the same readings. With
    ``random_times`` the observed frames are :func:`random_frames` from
    ``stream(seed, "times")`` instead of every ``every``-th."""
    truth, true_params = stored_trajectory(ds, trajectory_index, split)
    # The default layout is regular and seedless; only its grid and periodicity are used.
    geometry = Geometry(ds, SensorConfig(), seed=0)
    observed = random_frames(len(truth), every, stream(seed, "times")) if random_times else None
    readings = observe(
        truth,
        geometry,
        normaliser,
        noise_level,
        every,
        missing,
        stream(seed, "obs"),
        points,
        observed,
    )
    return TwinCase(
        ds=ds,
        trajectory_index=trajectory_index,
        truth=truth,
        true_params=true_params,
        readings=readings,
        points=points.double(),
        noise_std=noise_level * normaliser.channel_std.double(),
        seed=seed,
        split=split,
    )


@dataclass
class MethodRun:
    """What a method returns for one :class:`TwinCase`.

    Attributes
    ----------
    members
        ``members(t)`` -> member fields ``(N, C, H, W)`` at frame ``t`` in physical units
        (decoded on demand, so a latent method's reconstruction can be timed and memory stays
        at one frame).
    params
        Parameter ensemble ``(T, N, p)`` in physical units (constant for methods that do not
        estimate parameters).
    timings
        Seconds ``dynamics_s``, ``filter_s`` and ``reconstruction_s`` (DESIGN 7); ``members``
        must add its own decoding time to ``reconstruction_s`` when called.
    n_observed
        Frames with at least one assimilated reading.
    latent_dim
        Dimension of the state the filter updates (``d_s + p`` for LD-EnSF, the full state
        for full-space filters).
    gn_iterations
        Gauss–Newton iterations of each analysed window (window smoothers; empty for
        filters): how far from linear the window cost is, and what the smoother's cost is
        made of.
    """

    members: Callable[[int], Tensor]
    params: Tensor
    timings: dict[str, float]
    n_observed: int
    latent_dim: int
    gn_iterations: tuple[int, ...] = ()


class FieldMethod(ABC):
    """An assimilation method of the field twin experiment (a strategy object).

    ``name`` is the key in results and tables; :meth:`run` filters one case with randomness
    from ``gen`` only.
    """

    name: str

    @abstractmethod
    def run(self, case: TwinCase, gen: torch.Generator) -> MethodRun: ...


def run_method(method: FieldMethod, case: TwinCase) -> FieldTwinResult:
    """Run ``method`` on ``case`` with ``stream(case.seed, "filter")`` and score it frame by
    frame against the truth (:func:`score`)."""
    run = method.run(case, stream(case.seed, "filter"))
    t0 = time.perf_counter()
    recon0 = run.timings.get("reconstruction_s", 0.0)
    scores = score(
        (run.members(t) for t in range(case.n_frames)), case.truth, run.params, case.true_params
    )
    # members() decodes inside score() and books that time as reconstruction.
    recon = run.timings.get("reconstruction_s", 0.0) - recon0
    scoring = time.perf_counter() - t0 - recon
    return FieldTwinResult(
        scores=scores,
        timings={**run.timings, "scoring_s": scoring},
        n_frames=case.n_frames,
        n_observed=run.n_observed,
        n_sensors=case.readings.shape[1],
        latent_dim=run.latent_dim,
        gn_iterations=run.gn_iterations,
    )


@dataclass(frozen=True, eq=False)
class LDEnSFMethod(FieldMethod):
    """LD-EnSF (:class:`LDEnSF`) with a trained surrogate, reading the case at its sensors.

    ``assimilate=False`` is the no-assimilation reference: the same prior ensemble rolled out
    with every reading treated as missing. ``tag`` names an assimilating run (``ldetkf`` for
    the filter with the Kalman analysis).

    ``model_error=True`` (the default) scores members of the predictive distribution: each
    decoded member plus a centred Gaussian draw of the LDNet's own error, std
    ``s_c σ_m(t, c)`` per grid point and channel
    (:func:`~latentda.surrogates.model_error.predictive_members`, seeded by the case's seed
    and trajectory): the ensemble mean is unchanged, the spread grows. ``False``: the
    decoded members alone (latent uncertainty only).
    """

    surrogate: LatentSurrogate
    filter: LDEnSF = field(default_factory=LDEnSF)
    assimilate: bool = True
    model_error: bool = True
    tag: str = "ldensf"

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.tag if self.assimilate else "no_assimilation"

    def run(self, case: TwinCase, gen: torch.Generator) -> MethodRun:
        readings = case.readings
        if not self.assimilate:
            readings = torch.full_like(readings, float("nan"))
        # LDEnSF refuses other points than a fixed-order encoder's own.
        result = self.filter.assimilate(self.surrogate, readings, gen, case.points)
        return MethodRun(
            members=latent_members(result, case, self.model_error, self.name),
            params=result.params,
            timings=result.timings,
            n_observed=int(result.analysed.sum()),
            latent_dim=self.surrogate.state_dim,
        )


def latent_members(
    result: LatentTrajectory, case: TwinCase, model_error: bool, method: str
) -> Callable[[int], Tensor]:
    """``members(t)`` of a latent method's result: the members decoded at frame ``t``
    ``(N, C, H, W)`` (physical units), with ``model_error`` plus the LDNet's own error as
    centred draws seeded by the case
    (:func:`~latentda.surrogates.model_error.predictive_members`)."""

    def members(t: int) -> Tensor:
        return result.reconstruct([t], members=True)[0]

    if not model_error:
        return members
    sur = result.surrogate
    return predictive_members(
        members,
        sur.require_model_error(f"{method} (model_error=True)"),
        sur.normaliser.channel_std,
        (case.seed, case.trajectory_index),
        result.timings,
    )


def run_ldensf(
    surrogate: LatentSurrogate,
    ds: xr.Dataset,
    trajectory_index: int,
    filter: LDEnSF,
    noise_level: float,
    every: int = 1,
    missing: float = 0.0,
    seed: int = 0,
    assimilate: bool = True,
) -> FieldTwinResult:
    """LD-EnSF twin experiment on one test trajectory, observed at the surrogate's sensors
    (:func:`make_case` then :func:`run_method` with :class:`LDEnSFMethod`).

    Parameters
    ----------
    surrogate
        Trained LDNet and encoder for ``ds``'s system and grid.
    ds
        Store with the test split.
    trajectory_index
        Which test trajectory (within the test split).
    filter
        The LD-EnSF settings; it draws the initial ensemble from the prior.
    noise_level, every, missing
        Observation noise, schedule and missing-reading rate (see :func:`observe`).
    seed
        Seeds the ``obs`` stream (the readings, shared by all methods) and the ``filter``
        stream (prior draw and analyses).
    assimilate
        ``False``: the no-assimilation reference (see :class:`LDEnSFMethod`).
    """
    case = make_case(
        ds,
        trajectory_index,
        surrogate.sensors,
        surrogate.normaliser,
        noise_level,
        every,
        missing,
        seed,
    )
    return run_method(LDEnSFMethod(surrogate, filter, assimilate), case)
