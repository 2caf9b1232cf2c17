"""Full-space baselines (DESIGN 6.1, 6.2) and Latent-EnSF (6.4) for the field twin experiment.

Every method here forecasts with the full-order solver rebuilt from the store's attributes,
from a prior ensemble (``N`` parameter draws, their initial states, the system's spin-up to
frame 0), never from the test truth; they differ only in how a frame's readings enter:

- :class:`FullSpaceMethod`: any :class:`~latentda.filters.base.Filter` on the augmented state
  ``[x̃, ũ] ∈ R^{C·H·W + p}``, fields per-channel z-scored and parameters mapped to
  ``[-1, 1]`` with the training split's normaliser (one scale fits every channel), observed by
  bilinear interpolation at the sensors. :func:`letkf_method`, :func:`ensf_method` and
  :func:`no_assimilation_method` build the baselines.
- :class:`LatentEnSFMethod`: members encoded by the VAE's ``E_x``, the readings by ``E_y``,
  EnSF in the VAE latent space, members replaced by the decoded analysis.

Timings follow DESIGN 7: ``dynamics_s`` is solver time over the frames, ``filter_s`` analysis
time, ``reconstruction_s`` decoding (0 in full space); ``spinup_s`` (the prior ensemble's
spin-up to frame 0) is reported apart, as the latent methods have no counterpart to it.
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import xarray as xr
from torch import Tensor

from latentda.data.normalise import Normaliser
from latentda.data.splits import (
    dataset_axes,
    dataset_info,
    dataset_periodic,
    load_split,
    normaliser_for,
)
from latentda.errors import ConfigError, DataError
from latentda.experiments.field_twin import FieldMethod, MethodRun, TwinCase
from latentda.filters.base import Filter
from latentda.filters.ensemble import check_finite, clip_params
from latentda.filters.ensf import EnSF, LinearSchedule, PriorScoreName, make_prior_score
from latentda.filters.latent_analysis import whitened_analysis
from latentda.filters.letkf import LETKF
from latentda.filters.localization import (
    Distance,
    EuclideanDistance,
    GaspariCohn,
    GreatCircleDistance,
    PeriodicDistance,
    WithGlobalRows,
)
from latentda.observations.grid import BilinearGrid
from latentda.observations.observer import Observer, present_mask
from latentda.observations.operators import ObservationOperator
from latentda.observations.sensors import same_sensors
from latentda.surrogates.train_vae import load_vae
from latentda.surrogates.vae import ConvVAE, latent_std
from latentda.systems.base import FieldSystem, spin_up
from latentda.systems.registry import system_from_config

#: Localisation metric of each field system on its grid axes (as stored: ``(y, x)`` in the
#: system's length units, or ``(lat, lon)`` in degrees on the sphere).
DISTANCES: dict[str, Callable[[Any], Distance]] = {
    "kolmogorov": lambda system: PeriodicDistance(system.domain_lengths),
    "tsunami": lambda system: EuclideanDistance(),
    "sphere": lambda system: GreatCircleDistance(system.radius),
}


class LeadingBlock(ObservationOperator):
    """``H([x, u]) = inner(x)``: an operator on the leading ``inner.in_dim`` variables of a
    state augmented with ``extra`` unobserved trailing ones (the parameters).

    States are ``(..., inner.in_dim + extra)``; :meth:`vjp` is zero on the trailing block, so
    a score-based filter sees no likelihood gradient on the parameters.
    """

    def __init__(self, inner: ObservationOperator, extra: int) -> None:
        self.inner = inner
        self.extra = int(extra)
        self.in_dim = inner.in_dim + self.extra
        self.out_dim = inner.out_dim

    def __call__(self, x: Tensor) -> Tensor:
        self._check(x)
        return self.inner(x[..., : self.inner.in_dim])

    def vjp(self, x: Tensor, v: Tensor) -> Tensor:
        self._check(x)
        head = self.inner.vjp(x[..., : self.inner.in_dim], v)
        return torch.cat([head, head.new_zeros(*head.shape[:-1], self.extra)], dim=-1)

    @property
    def locations(self) -> Tensor:
        return self.inner.locations


@dataclass(frozen=True, eq=False)
class SolverModel:
    """The full-order model of a store and the statistics that put its states in filter units.

    Attributes
    ----------
    system
        The field system rebuilt from the store's attributes.
    normaliser
        Per-channel z-scores and parameter bounds (the training split's).
    axes
        Grid axes ``[(H,), (W,)]`` in the system's units.
    periodic
        Whether each grid axis wraps.
    distance
        Localisation metric between grid points and sensors (:data:`DISTANCES`).
    """

    system: FieldSystem
    normaliser: Normaliser
    axes: list[Tensor]
    periodic: tuple[bool, bool]
    distance: Distance

    @classmethod
    def from_dataset(cls, ds: xr.Dataset, normaliser: Normaliser | None = None) -> SolverModel:
        """Rebuild the solver from ``ds.attrs["latentda"]``; ``normaliser`` defaults to the
        training split's (:func:`normaliser_for`, which reads the whole split: pass one
        normaliser to every method built on a large store)."""
        config = dataset_info(ds)["system"]
        system = system_from_config(config)
        if config["name"] not in DISTANCES:
            raise ConfigError(f"no localisation distance for system {config['name']!r}")
        norm = normaliser_for(ds, load_split(ds, "train")) if normaliser is None else normaliser
        return cls(
            system,
            norm,
            dataset_axes(ds),
            dataset_periodic(ds),
            DISTANCES[config["name"]](system),
        )

    @property
    def field_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return tuple(self.system.state_shape)  # type: ignore[return-value]

    @property
    def n_params(self) -> int:
        return len(self.system.param_names)

    @property
    def state_dim(self) -> int:
        """``C·H·W + p``, the augmented filter state."""
        c, h, w = self.field_shape
        return c * h * w + self.n_params

    def state_coords(self) -> Tensor:
        """Coordinates of the augmented state's variables ``(C·H·W + p, 3)`` for
        :class:`WithGlobalRows`: grid ``(axis 0, axis 1)`` of each field value (row-major,
        channel-major like the flattened state) with flag 0, then the parameters with flag 1
        (global: updated with every reading)."""
        c = self.field_shape[0]
        g0, g1 = torch.meshgrid(*self.axes, indexing="ij")
        grid = torch.stack([g0.reshape(-1), g1.reshape(-1), torch.zeros(g0.numel())], -1)
        params = torch.zeros(self.n_params, 3, dtype=grid.dtype)
        params[:, 2] = 1.0
        return torch.cat([grid.repeat(c, 1), params])

    def grid_spacing(self) -> float:
        """Distance between the first two nodes along grid axis 0 (one latitude step on the
        sphere), the unit of :func:`letkf_method`'s radius."""
        a = torch.stack([self.axes[0][:2], self.axes[1][:1].expand(2)], -1)
        return float(self.distance.pairwise(a[:1], a[1:])[0, 0])

    def prior(self, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor, float]:
        """Prior ensemble at frame 0: ``n`` parameter draws ``(n, p)``, their initial states
        spun up ``(n, C, H, W)`` (float64, physical units) and the model time of frame 0."""
        u = self.system.sample_params(n, gen).double()
        x, t = spin_up(self.system, u, self.system.initial_state(u, gen))
        return x, u, t

    def to_filter(self, x: Tensor, u: Tensor) -> Tensor:
        """Physical ``x`` ``(N, C, H, W)`` and ``u`` ``(N, p)`` -> ``[x̃, ũ]`` ``(N, d + p)``."""
        z = self.normaliser.normalise_fields(x).flatten(1)
        return torch.cat([z, self.normaliser.normalise_params(u)], dim=1)

    def from_filter(self, E: Tensor) -> tuple[Tensor, Tensor]:
        """Inverse of :meth:`to_filter`."""
        d = self.state_dim - self.n_params
        x = self.normaliser.denormalise_fields(E[:, :d].unflatten(1, self.field_shape))
        return x, self.normaliser.denormalise_params(E[:, d:])


@dataclass(frozen=True, eq=False)
class SolverMethod(FieldMethod):
    """Template of the methods that forecast with the full-order solver: prior ensemble,
    then per frame ``t`` one solver step (``t > 0``) and, at frames with a present reading,
    :meth:`analyse`. Subclasses give :meth:`prepare` (per-case set-up) and :meth:`analyse`.

    Parameters
    ----------
    model
        The solver and normaliser (:meth:`SolverModel.from_dataset`).
    ensemble_size
        ``N``.
    """

    model: SolverModel
    ensemble_size: int = 20

    def __post_init__(self) -> None:
        if self.ensemble_size < 2:
            raise ConfigError(f"ensemble_size must be >= 2, got {self.ensemble_size}")

    @property
    def assimilates(self) -> bool:
        return True

    @property
    @abstractmethod
    def latent_dim(self) -> int:
        """Dimension of the state the analysis updates."""

    @abstractmethod
    def prepare(self, case: TwinCase) -> Any:
        """Per-case context handed to :meth:`analyse` (observer, normalised readings, ...)."""

    @abstractmethod
    def analyse(
        self,
        context: Any,
        x: Tensor,
        u: Tensor,
        frame: int,
        gen: torch.Generator,
        timings: dict[str, float],
    ) -> tuple[Tensor, Tensor]:
        """Analysis of members ``x`` ``(N, C, H, W)`` and parameters ``u`` ``(N, p)``
        (physical, float64) at ``frame``; books its own seconds into ``timings``."""

    def run(self, case: TwinCase, gen: torch.Generator) -> MethodRun:
        """Filter ``case`` with randomness from ``gen`` only (prior draw first, then the
        analyses), so the same prior ensemble starts every method for the same seed.

        Raises
        ------
        DataError
            If the case's fields or readings do not fit the solver's grid.
        FilterDivergence
            If the ensemble becomes non-finite; the message names the stage and frame.
        """
        shape = self.model.field_shape
        if case.truth.shape[1:] != shape or case.readings.shape[2] != shape[0]:
            raise DataError(
                f"case fields {tuple(case.truth.shape[1:])} and readings "
                f"{tuple(case.readings.shape)} do not fit the solver's fields {shape}"
            )
        context = self.prepare(case) if self.assimilates else None
        observed = present_mask(case.readings).flatten(1).any(1)  # (T,)
        if not self.assimilates:
            observed = torch.zeros_like(observed)
        timings = {"dynamics_s": 0.0, "filter_s": 0.0, "reconstruction_s": 0.0}
        t0 = time.perf_counter()
        x, u, t = self.model.prior(self.ensemble_size, gen)
        timings["spinup_s"] = time.perf_counter() - t0
        check_finite(x, 0, "spin-up", self.name)
        # Kept in float32, as the store keeps the truth: half the memory of every frame of
        # every member (60 MB for the sphere at bench size), far below the scores' spread.
        members = torch.empty(case.n_frames, *x.shape, dtype=torch.float32)
        params = torch.empty(case.n_frames, *u.shape, dtype=torch.float64)
        system = self.model.system
        for k in range(case.n_frames):
            if k > 0:
                t0 = time.perf_counter()
                x = system.step(x, u, system.frame_dt, t)
                t += system.frame_dt
                timings["dynamics_s"] += time.perf_counter() - t0
                check_finite(x, k, "forecast", self.name)
            if observed[k]:
                x, u = self.analyse(context, x, u, k, gen, timings)
                check_finite(x, k, "analysis", self.name)
                check_finite(u, k, "analysis", self.name)
            members[k], params[k] = x, u
        return MethodRun(
            members=lambda frame: members[frame],
            params=params,
            timings=timings,
            n_observed=int(observed.sum()),
            latent_dim=self.latent_dim,
        )


@dataclass(frozen=True)
class _FullSpaceContext:
    observers: list[Observer]  # one per frame (the same object when the sensors stay put)
    y: Tensor  # (T, S·C) normalised readings, NaN = missing

    def observer(self, frame: int) -> Observer:
        """The observer of frame ``frame``."""
        return self.observers[frame]


def sensor_context(model: SolverModel, case: TwinCase) -> _FullSpaceContext:
    """The observers of the augmented state ``[x̃, ũ]`` at the case's sensors, one per
    frame (bilinear reads of the z-scored fields at that frame's positions, noise ``σ_c/s_c``
    per channel, sensor-major; one shared observer for sensors that stay put), and the
    z-scored readings ``(T, S·C)`` (NaN = missing)."""
    std = case.noise_std.double() / model.normaliser.channel_std.double()  # (C,)

    def at(points: Tensor) -> Observer:
        grid = BilinearGrid(points, model.field_shape, model.axes, model.periodic)
        return Observer(LeadingBlock(grid, model.n_params), std.repeat(len(points)))

    if case.points.ndim == 3:  # moving sensors: (T, S, 2)
        observers = [at(p) for p in case.points]
    else:
        observers = [at(case.points)] * case.n_frames
    y = model.normaliser.normalise_fields(case.readings.double(), -1).flatten(1)
    return _FullSpaceContext(observers, y)


@dataclass(frozen=True, eq=False, kw_only=True)
class FullSpaceMethod(SolverMethod):
    """A :class:`Filter` on the full augmented state ``[x̃, ũ]`` (normalised fields and
    parameters), forecast by the solver.

    The observer reads the normalised fields bilinearly at the case's sensors with noise
    ``σ_c/s_c`` (``s_c`` the channel std): bilinear weights sum to 1, so reading a z-scored
    field is z-scoring the reading. Parameters are not observed; a Kalman-type filter updates
    them through their ensemble covariance with the readings, a score filter cannot (see
    :func:`ensf_method`).

    Parameters
    ----------
    filter
        The analysis scheme on ``(N, C·H·W + p)``; ``None`` runs the prior ensemble without
        analyses (the full-space no-assimilation reference).
    label
        The method's ``name``.
    clip_params
        Project the analysed ``ũ`` onto the prior's support ``[-1, 1]^p``: the uniform prior
        has no mass outside, and the solver may be unstable there (e.g. ``Re <= 0``).
    """

    filter: Filter | None = None
    label: str = "full_space"
    clip_params: bool = True

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.label

    @property
    def assimilates(self) -> bool:
        return self.filter is not None

    @property
    def latent_dim(self) -> int:
        return self.model.state_dim

    def prepare(self, case: TwinCase) -> _FullSpaceContext:
        context = sensor_context(self.model, case)
        std = context.observer(0).noise_std
        # A filter with a step-stability condition (EnSF) checks it against the sharpest
        # reading, one sensor on a node: an exploded but finite analysis would not fail
        # loudly, it would make the solver crawl at CFL steps of a huge velocity.
        check = getattr(self.filter, "check_growth", None)
        if check is not None:
            check(float(std.min()) ** -2, "a sensor reading in z-score units")
        return context

    def analyse(
        self,
        context: _FullSpaceContext,
        x: Tensor,
        u: Tensor,
        frame: int,
        gen: torch.Generator,
        timings: dict[str, float],
    ) -> tuple[Tensor, Tensor]:
        assert self.filter is not None  # run() analyses only when a filter is set
        t0 = time.perf_counter()
        E = self.filter.analysis(
            self.model.to_filter(x, u), context.y[frame], context.observer(frame), gen
        )
        if self.clip_params:
            E = clip_params(E, self.model.state_dim - self.model.n_params)
        timings["filter_s"] += time.perf_counter() - t0
        return self.model.from_filter(E)


def no_assimilation_method(
    ds: xr.Dataset, ensemble_size: int = 20, normaliser: Normaliser | None = None
) -> FullSpaceMethod:
    """The prior ensemble run by the solver without analyses (``full_no_assimilation``):
    the reference the full-space filters must beat, from the same prior draw for the same
    seed."""
    model = SolverModel.from_dataset(ds, normaliser)
    return FullSpaceMethod(
        model=model, ensemble_size=ensemble_size, filter=None, label="full_no_assimilation"
    )


def letkf_method(
    ds: xr.Dataset,
    ensemble_size: int = 20,
    radius: float = 4.0,
    inflation: float = 1.0,
    rotate: bool = False,
    batch_points: int = 4096,
    clip_params: bool = True,
    normaliser: Normaliser | None = None,
) -> FullSpaceMethod:
    """Full-space LETKF (``letkf``): one local ETKF per state variable with Gaspari–Cohn
    R-localisation, batched over grid points.

    Distances are the system's (:data:`DISTANCES`: periodic torus for Kolmogorov, Euclidean
    for the tsunami, great-circle on the sphere). The parameters are global: they sit at
    distance 0 from every reading (:class:`WithGlobalRows`), so their local analysis uses
    all readings at full weight.

    Parameters
    ----------
    radius
        Localisation length in grid spacings (:meth:`SolverModel.grid_spacing`, one step of
        the first grid axis), so one setting means the same on every system; the taper's
        half-width is ``1.82·radius`` spacings and its support twice that. ``inf``: global.
    inflation, rotate
        Multiplicative inflation of the analysis anomalies and random mean-preserving
        rotation (see :class:`LETKF`).
    batch_points
        State variables per batched local solve (memory).
    clip_params, normaliser
        See :class:`FullSpaceMethod` and :meth:`SolverModel.from_dataset`.
    """
    if not radius > 0:
        raise ConfigError(f"LETKF radius must be > 0 grid spacings, got {radius}")
    model = SolverModel.from_dataset(ds, normaliser)
    taper = GaspariCohn(radius * model.grid_spacing())
    letkf = LETKF(
        inflation=inflation,
        rotate=rotate,
        coords=model.state_coords(),
        distance=WithGlobalRows(model.distance),
        taper=taper,
        batch_points=batch_points,
    )
    return FullSpaceMethod(
        model=model,
        ensemble_size=ensemble_size,
        filter=letkf,
        label="letkf",
        clip_params=clip_params,
    )


def ensf_method(
    ds: xr.Dataset,
    ensemble_size: int = 20,
    scale: float = 1.0,
    steps: int = 100,
    eps_alpha: float = 0.05,
    eps_beta: float = 0.0,
    inflation: float = 1.0,
    prior_score: PriorScoreName = "member",
    clip_params: bool = True,
    normaliser: Normaliser | None = None,
) -> FullSpaceMethod:
    """Full-space EnSF (``ensf``, DESIGN 6.2) on the normalised augmented state.

    The likelihood score ``J_Hᵀ(y − H x)/σ²`` is zero on every component no sensor reads,
    the parameters included. With the per-member prior score nothing couples components, so
    EnSF leaves those where the forecast put them, up to the sampler's own noise (about
    ``c/√K`` per analysis in z-score units, added to every component): it does **not**
    estimate parameters, and with sparse sensors it barely corrects the field between
    them. This is DESIGN 6.2's known failure mode, reported as it is (on the tests' 16²
    Kolmogorov store EnSF gains about 2x over no assimilation with a sensor on every node,
    and nothing with 4×4 sensors). The mixture prior score couples components through its
    member weights (a reweighting of members by their fit to the readings), so it can move
    unobserved ones, parameters included.

    Parameters
    ----------
    scale
        ``c``: the state is divided by ``c`` before diffusion. The explicit steps resolve
        the likelihood only for roughly ``c ≲ √steps · σ̃`` (``σ̃`` the noise std in z-score
        units, 0.1 at 10 % noise: ``c ≲ 1`` for 100 steps); a case whose noise violates it
        is refused with :class:`ConfigError` (:meth:`EnSF.check_growth`).
    steps, eps_alpha, eps_beta
        Pseudo-time steps ``K`` and the noise schedule (:class:`LinearSchedule`).
    inflation
        Multiplicative inflation of the analysis anomalies.
    prior_score
        The prior-score strategy by name (:data:`~latentda.filters.ensf.PRIOR_SCORES`).
    clip_params, normaliser
        See :class:`FullSpaceMethod` and :meth:`SolverModel.from_dataset`.
    """
    model = SolverModel.from_dataset(ds, normaliser)
    ensf = EnSF(
        steps=steps,
        schedule=LinearSchedule(eps_alpha, eps_beta),
        prior_score=make_prior_score(prior_score),
        scale=scale,
        inflation=inflation,
    )
    return FullSpaceMethod(
        model=model, ensemble_size=ensemble_size, filter=ensf, label="ensf", clip_params=clip_params
    )


@dataclass(frozen=True, eq=False, kw_only=True)
class LatentEnSFMethod(SolverMethod):
    """Latent-EnSF (``latent_ensf``, DESIGN 6.4; Si & Chen 2025).

    At a frame with readings: ``z_j = μ_x(x̃_j)`` for each forecast member (``E_x`` on its
    z-scored fields), ``(φ, ℓ) = E_y(ỹ)`` for the z-scored readings (sensor-major, as the VAE
    was trained; missing readings are flagged to ``E_y`` by its presence mask, though it was
    trained on complete ones), EnSF with the identity observer ``φ = z + ε``,
    ``ε ~ N(0, diag σ²)``, ``σ = noise_scale · e^{ℓ/2}`` (:func:`whitened_analysis`), and
    the members become the decoded analysis ``D(z_a)``. The solver carries them on from
    there, so every analysis costs the VAE's reconstruction error ``D∘E_x``, however weak
    the update. Parameters are not estimated: they stay the prior draws.

    Parameters
    ----------
    vae
        Trained :class:`ConvVAE` for this store's grid.
    vae_normaliser
        The statistics it was trained with.
    sensors
        Its training sensor layout ``(S, 2)`` in grid units; a case read elsewhere is refused
        (``E_y`` takes a fixed-order reading vector).
    ensf
        EnSF on the whitened latent (``z/σ``, unit noise).
    noise_scale
        Multiplies ``E_y``'s standard deviation (a tuning knob: 1 trusts the encoder).
    """

    vae: ConvVAE
    vae_normaliser: Normaliser
    sensors: Tensor
    ensf: EnSF
    noise_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.noise_scale) and self.noise_scale > 0):
            raise ConfigError(f"noise_scale must be finite and > 0, got {self.noise_scale}")
        c = self.vae.config
        if (c.channels, c.height, c.width) != self.model.field_shape:
            raise DataError(
                f"the VAE was trained on fields {(c.channels, c.height, c.width)}, the store "
                f"holds {self.model.field_shape}"
            )
        self.ensf.check_growth(1.0, "the whitened latent likelihood")

    @property
    def name(self) -> str:  # type: ignore[override]
        return "latent_ensf"

    @property
    def latent_dim(self) -> int:
        return self.vae.config.latent_dim

    def prepare(self, case: TwinCase) -> Tensor:
        if not same_sensors(case.points, self.sensors):
            raise DataError(
                f"Latent-EnSF's VAE reads its {len(self.sensors)} training sensors in a "
                f"fixed order; this case has {case.points.shape[-2]} sensors elsewhere"
            )
        y = self.vae_normaliser.normalise_fields(case.readings.double(), -1)
        return y.flatten(1).float()  # (T, S·C), sensor-major like the VAE's training readings

    def analyse(
        self,
        context: Tensor,
        x: Tensor,
        u: Tensor,
        frame: int,
        gen: torch.Generator,
        timings: dict[str, float],
    ) -> tuple[Tensor, Tensor]:
        norm = self.vae_normaliser
        t0 = time.perf_counter()
        with torch.no_grad():
            z = self.vae.encode_state(norm.normalise_fields(x).float())[0].double()
            phi, logvar = self.vae.encode_obs(context[frame][None])
            sigma = self.noise_scale * latent_std(logvar[0].double())
            za = whitened_analysis(self.ensf, z, phi[0].double(), sigma, gen)
            t1 = time.perf_counter()
            x = norm.denormalise_fields(self.vae.decode(za.float()).double())
        timings["filter_s"] += t1 - t0
        timings["reconstruction_s"] += time.perf_counter() - t1
        return x, u


def latent_ensf_method(
    ds: xr.Dataset,
    vae_dir: str | Path,
    ensemble_size: int = 20,
    scale: float = 7.0,
    steps: int = 100,
    eps_alpha: float = 0.01,
    eps_beta: float = 0.0,
    noise_scale: float = 1.0,
) -> LatentEnSFMethod:
    """Latent-EnSF with the VAE checkpoint in ``vae_dir`` (``latentda train vae``).

    Parameters
    ----------
    scale, steps, eps_alpha, eps_beta
        EnSF on the whitened latent: as for LD-EnSF (:func:`~latentda.filters.ldensf.
        ldensf_ensf`) the likelihood precision is 1 there, so ``scale ≲ √steps``.
    noise_scale
        Multiplies the latent observation noise std from ``E_y``.
    """
    vae, _, vae_norm, meta = load_vae(vae_dir)
    return LatentEnSFMethod(
        model=SolverModel.from_dataset(ds, vae_norm),
        ensemble_size=ensemble_size,
        vae=vae,
        vae_normaliser=vae_norm,
        sensors=torch.tensor(meta["points"], dtype=torch.float64),
        ensf=EnSF(steps=steps, schedule=LinearSchedule(eps_alpha, eps_beta), scale=scale),
        noise_scale=noise_scale,
    )
