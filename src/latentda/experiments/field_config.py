"""Configuration of the field twin experiments (``latentda run`` on a stored dataset and
``latentda benchmark``): observation settings, and the field methods by key.

Every field method is one :class:`FieldMethodConfig` dataclass: its knobs, validated, with
defaults; the trained surrogates it ``needs``; the benchmark's knob ``grid``; and
``build(context)``, the :class:`~latentda.experiments.field_twin.FieldMethod` it configures.
``latentda run`` parses the YAML ``method`` mapping into one, ``latentda benchmark`` builds
one per knob combination: both construct methods here and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import xarray as xr
from torch import Tensor

from latentda.data.normalise import Normaliser
from latentda.data.splits import dataset_info, grid_coords
from latentda.errors import ConfigError
from latentda.experiments.field_methods import (
    SolverModel,
    ensf_method,
    latent_ensf_method,
    letkf_method,
    no_assimilation_method,
)
from latentda.experiments.field_smoothers import FourDEnVarFieldMethod, LEVDAMethod
from latentda.experiments.field_twin import FieldMethod, LDEnSFMethod, TwinCase, make_case
from latentda.filters.ensf import (
    GaussianPriorScore,
    MemberPriorScore,
    PriorScore,
    PriorScoreName,
)
from latentda.filters.envar import FourDEnVar, check_window_knobs
from latentda.filters.etkf import ETKF
from latentda.filters.latent_analysis import KalmanAnalysis, ScoreAnalysis, ldensf_ensf
from latentda.filters.ldensf import LatentSurrogate, LDEnSF
from latentda.filters.levda import LEVDA
from latentda.observations.layouts import moving
from latentda.observations.sensors import RandomLayout, RegularLayout, SensorConfig
from latentda.schema import Tagged, non_negative, parse, positive, to_dict
from latentda.surrogates.sensing import Geometry

# --------------------------------------------------------------------------- observations


@dataclass
class SettingConfig:
    """One observation setting: where the sensors are, their noise and schedule.

    ``layout: regular`` is an evenly spread ``ny × nx`` sub-grid; ``layout: random`` draws
    ``max(min_sensors, round(fraction · H · W))`` points uniformly (seeded by the encoder's
    seed). ``noise_level`` is the noise std as a fraction of each channel's std (DESIGN 4).
    ``times: regular``: frame ``t`` is observed iff ``t % every == 0``; ``times: random``:
    frame 0 and then each frame with probability ``1/every`` (the same mean rate, at
    irregular times; drawn per seed, the same for every method). ``missing`` is the
    probability that a sensor's reading at a frame is lost (NaN: failed sensors at test
    time; the encoder learns to expect them with ``encoder.drop_rate``). ``drift > 0``
    moves the sensors: each drifts from its layout position at ``drift`` grid spacings per
    frame in its own random direction (seeded like the layout), wrapping on periodic axes
    and reflected at walls (:func:`~latentda.observations.layouts.moving`). An encoder is
    trained per setting, on the layout at rest and the regular schedule.
    """

    layout: Literal["regular", "random"] = "regular"
    ny: int = 10
    nx: int = 10
    fraction: float = 0.001
    min_sensors: int = 4
    noise_level: float = 0.1
    every: int = 1
    times: Literal["regular", "random"] = "regular"
    missing: float = 0.0
    drift: float = 0.0

    def validate(self, where: str) -> None:
        positive(where, ny=self.ny, nx=self.nx, fraction=self.fraction, every=self.every)
        positive(where, min_sensors=self.min_sensors, noise_level=self.noise_level)
        non_negative(where, drift=self.drift)
        if not 0.0 <= self.missing < 1.0:
            raise ConfigError(f"{where}.missing must lie in [0, 1), got {self.missing}")
        if not math.isfinite(self.drift):
            raise ConfigError(f"{where}.drift must be finite, got {self.drift}")

    def sensors(self, grid_shape: tuple[int, int]) -> SensorConfig:
        """The encoder trainer's sensor settings on a grid of ``grid_shape`` points."""
        if self.layout == "regular":
            layout: RegularLayout | RandomLayout = RegularLayout(ny=self.ny, nx=self.nx)
        else:
            count = max(self.min_sensors, round(self.fraction * grid_shape[0] * grid_shape[1]))
            layout = RandomLayout(count=count)
        return SensorConfig(layout=layout, noise_level=self.noise_level, every=self.every)


class Setting:
    """One observation setting applied to a store: its sensors, normaliser and the cases it
    observes (every method of a run reads the same cases)."""

    def __init__(
        self, name: str, cfg: SettingConfig, ds: xr.Dataset, normaliser: Normaliser, seed: int
    ) -> None:
        self.name, self.cfg, self.ds, self.normaliser = name, cfg, ds, normaliser
        height, width = dataset_info(ds)["shape"][-2:]
        self.sensors = cfg.sensors((height, width))
        # The encoder trainer places its sensors with its own seed: the same points here.
        geometry = Geometry(ds, self.sensors, seed)
        self.points = geometry.points
        self.track = (
            drifting(geometry, cfg.drift, ds.sizes["time"], seed) if cfg.drift > 0 else None
        )

    def case(self, split: str, position: int, seed: int) -> TwinCase:
        """Trajectory ``position`` of ``split`` observed with the readings of ``seed``."""
        return make_case(
            self.ds,
            position,
            self.points if self.track is None else self.track,
            self.normaliser,
            self.cfg.noise_level,
            self.cfg.every,
            self.cfg.missing,
            seed,
            split,
            random_times=self.cfg.times == "random",
        )

    def describe(self) -> dict[str, Any]:
        n_points = int(grid_coords(self.ds).shape[0])
        return {
            **to_dict(self.cfg),
            "sensors": int(self.points.shape[0]),
            "sensor_fraction": float(self.points.shape[0]) / n_points,
        }


def drifting(geometry: Geometry, drift: float, n_frames: int, seed: int) -> Tensor:
    """Positions ``(T, S, 2)`` of the sensors of ``geometry`` drifting from their layout
    positions at ``drift`` grid spacings per frame, each in a direction drawn uniformly
    from ``seed`` (:func:`~latentda.observations.layouts.moving`: periodic axes wrap,
    walls reflect)."""
    gen = torch.Generator().manual_seed(seed + 7919)  # its own draw: the layout's is unchanged
    angle = 2 * math.pi * torch.rand(len(geometry.points), generator=gen, dtype=torch.float64)
    spacing = torch.tensor([float(a[1] - a[0]) for a in geometry.axes], dtype=torch.float64)
    velocity = drift * torch.stack([torch.cos(angle), torch.sin(angle)], -1) * spacing
    return torch.stack(
        [
            moving(geometry.points, velocity, float(t), geometry.axes, geometry.periodic)
            for t in range(n_frames)
        ]
    )


# --------------------------------------------------------------------------- methods


@dataclass
class MethodContext:
    """What a method's ``build`` may use.

    Attributes
    ----------
    ds
        The store (grid, system config, prior; never read test truths from it).
    normaliser
        Field and parameter normalisation of the training split (what the surrogates were
        trained with and the readings' noise is scaled by).
    artefacts
        Trained surrogate directories by kind: ``ldnet``, ``encoder``, ``vae`` (those
        given or trained for the run).
    """

    ds: xr.Dataset
    normaliser: Normaliser
    artefacts: dict[str, Path]

    @cached_property
    def surrogate(self) -> LatentSurrogate:
        """The LDNet and, if there is one, the encoder, loaded once."""
        return LatentSurrogate.load(self.artefact("ldnet"), self.artefacts.get("encoder"), self.ds)

    def artefact(self, kind: str) -> Path:
        """The directory of ``kind``, or a one-line error saying it is needed."""
        if kind not in self.artefacts:
            raise ConfigError(f"this method needs a trained {kind} (surrogates.{kind})")
        return self.artefacts[kind]


@dataclass
class FieldMethodConfig(Tagged):
    """A field method: ``name`` picks the class, the other keys are its knobs.

    Class attributes: ``label`` (tables and figures), ``needs`` (artefact kinds ``build``
    reads), ``grid`` (the benchmark's candidate values per knob; the product is searched in
    order, so the first value of each is the default's neighbourhood).
    """

    registry: ClassVar[dict[str, type]] = {}
    label: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    grid: ClassVar[dict[str, list[Any]]] = {}

    def build(self, ctx: MethodContext) -> FieldMethod:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def with_knobs(
        cls, ensemble_size: int, where: str = "method", **knobs: Any
    ) -> FieldMethodConfig:
        """The validated config of this method with ``knobs`` (the rest at defaults);
        errors name ``where``."""
        data = {"name": cls.tag, "ensemble_size": ensemble_size, **knobs}
        return parse(FieldMethodConfig, data, where)

    @classmethod
    def candidates(cls) -> list[dict[str, Any]]:
        """Every knob combination of :attr:`grid` in order (``[{}]`` without knobs)."""
        combos: list[dict[str, Any]] = [{}]
        for key, values in cls.grid.items():
            combos = [{**c, key: v} for c in combos for v in values]
        return combos


def _ensemble(where: str, ensemble_size: int, inflation: float = 1.0) -> None:
    if ensemble_size < 2:
        raise ConfigError(f"{where}.ensemble_size must be >= 2, got {ensemble_size}")
    if not (math.isfinite(inflation) and inflation > 0):
        raise ConfigError(f"{where}.inflation must be finite and > 0, got {inflation}")


def _pseudo_time(where: str, steps: int, eps_alpha: float, eps_beta: float) -> None:
    positive(where, steps=steps)
    non_negative(where, eps_alpha=eps_alpha, eps_beta=eps_beta)
    for key, value in (("eps_alpha", eps_alpha), ("eps_beta", eps_beta)):
        if value >= 1:
            raise ConfigError(f"{where}.{key} must be < 1, got {value}")


@FieldMethodConfig.register
@dataclass
class LDEnSFConfig(FieldMethodConfig):
    """``ldensf``: EnSF on the whitened latent ``[s, u]`` (:func:`ldensf_ensf`: ``scale`` in
    units of the latent noise, stable below ``√steps``), parameter random walk
    ``param_jitter``; ``model_error``: the scored members carry the LDNet's own error
    (:class:`~latentda.experiments.field_twin.LDEnSFMethod`)."""

    tag: ClassVar[str] = "ldensf"
    label: ClassVar[str] = "LD-EnSF"
    needs: ClassVar[tuple[str, ...]] = ("ldnet", "encoder")
    grid: ClassVar[dict[str, list[Any]]] = {
        "scale": [7.0, 3.0, 5.0, 9.0],
        "param_jitter": [0.0, 0.01],
    }
    name: str = "ldensf"
    ensemble_size: int = 20
    scale: float = 7.0
    steps: int = 100
    eps_alpha: float = 0.01
    eps_beta: float = 0.0
    param_jitter: float = 0.0
    model_error: bool = True

    def validate(self, where: str) -> None:
        _ensemble(where, self.ensemble_size)
        _pseudo_time(where, self.steps, self.eps_alpha, self.eps_beta)
        positive(where, scale=self.scale)
        non_negative(where, param_jitter=self.param_jitter)
        try:
            self.filter()
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    #: The EnSF's prior-score strategy and whether it samples around the forecast mean
    #: (:class:`ScoreAnalysis`); not knobs, so outside the configuration and its key.
    prior_score_type: ClassVar[type[PriorScore]] = MemberPriorScore
    centred: ClassVar[bool] = False

    def analysis(self) -> ScoreAnalysis:
        """The latent analysis (the score filter's configuration)."""
        ensf = ldensf_ensf(
            self.scale, self.steps, self.eps_alpha, self.eps_beta, self.prior_score_type()
        )
        return ScoreAnalysis(ensf, centred=self.centred)

    def filter(self) -> LDEnSF:
        return LDEnSF(self.ensemble_size, self.analysis(), param_jitter=self.param_jitter)

    def build(self, ctx: MethodContext) -> FieldMethod:
        return LDEnSFMethod(
            ctx.surrogate, self.filter(), model_error=self.model_error, tag=self.tag
        )


@FieldMethodConfig.register
@dataclass
class LDEnSFGaussianConfig(LDEnSFConfig):
    """``ldensf_gaussian``: LD-EnSF with the Gaussian prior score
    (:class:`~latentda.filters.ensf.GaussianPriorScore`: the diffused Gaussian fit of the
    forecast ensemble) in place of DESIGN's per-member one, sampled around the forecast mean
    (``ScoreAnalysis(centred=True)``): the ablation that keeps the score filter but lets its
    analysis see the forecast spread; otherwise ``ldensf``. The sampler's last explicit step
    leaves a noise of about ``c/√K`` noise units in every member, so the spread-aware gain
    shows only at small ``c``, hence its own grid."""

    tag: ClassVar[str] = "ldensf_gaussian"
    label: ClassVar[str] = "LD-EnSF, Gaussian prior score"
    grid: ClassVar[dict[str, list[Any]]] = {
        "scale": [1.0, 0.3, 0.5, 2.0],
        "param_jitter": [0.0, 0.01],
    }
    prior_score_type: ClassVar[type[PriorScore]] = GaussianPriorScore
    centred: ClassVar[bool] = True
    name: str = "ldensf_gaussian"
    scale: float = 1.0


@FieldMethodConfig.register
@dataclass
class LDETKFConfig(FieldMethodConfig):
    """``ldetkf``: LD-EnSF with the ETKF in place of the EnSF analysis
    (:class:`~latentda.filters.latent_analysis.KalmanAnalysis`), the ablation that isolates
    the score filter's update: same LDNet, encoder, noise estimate, prior and forecast;
    ``inflation`` of the analysis anomalies, parameter random walk ``param_jitter``."""

    tag: ClassVar[str] = "ldetkf"
    label: ClassVar[str] = "LD-ETKF (LD-EnSF, Kalman analysis)"
    needs: ClassVar[tuple[str, ...]] = ("ldnet", "encoder")
    grid: ClassVar[dict[str, list[Any]]] = {
        "inflation": [1.0, 1.05, 1.1, 1.2],
        "param_jitter": [0.0, 0.01],
    }
    name: str = "ldetkf"
    ensemble_size: int = 20
    inflation: float = 1.0
    param_jitter: float = 0.0
    model_error: bool = True

    def validate(self, where: str) -> None:
        _ensemble(where, self.ensemble_size, self.inflation)
        non_negative(where, param_jitter=self.param_jitter)

    def build(self, ctx: MethodContext) -> FieldMethod:
        analysis = KalmanAnalysis(ETKF(inflation=self.inflation))
        filt = LDEnSF(self.ensemble_size, analysis, param_jitter=self.param_jitter)
        return LDEnSFMethod(ctx.surrogate, filt, model_error=self.model_error, tag=self.tag)


@FieldMethodConfig.register
@dataclass
class NoAssimilationConfig(FieldMethodConfig):
    """``no_assimilation``: LD-EnSF's prior ensemble rolled out by the LDNet, no readings."""

    tag: ClassVar[str] = "no_assimilation"
    label: ClassVar[str] = "No assimilation (LDNet, prior ensemble)"
    needs: ClassVar[tuple[str, ...]] = ("ldnet",)
    name: str = "no_assimilation"
    ensemble_size: int = 20
    model_error: bool = True

    def validate(self, where: str) -> None:
        _ensemble(where, self.ensemble_size)

    def build(self, ctx: MethodContext) -> FieldMethod:
        filt = LDEnSF(self.ensemble_size)
        return LDEnSFMethod(ctx.surrogate, filt, assimilate=False, model_error=self.model_error)


@FieldMethodConfig.register
@dataclass
class LETKFFieldConfig(FieldMethodConfig):
    """``letkf``: full-space LETKF on ``[fields, parameters]`` with the solver, Gaspari–Cohn
    R-localisation of ``localization_radius`` grid spacings (``.inf``: none)."""

    tag: ClassVar[str] = "letkf"
    label: ClassVar[str] = "LETKF"
    grid: ClassVar[dict[str, list[Any]]] = {
        "inflation": [1.05, 1.0, 1.1, 1.2],
        "localization_radius": [4.0, 2.0],
    }
    name: str = "letkf"
    ensemble_size: int = 20
    inflation: float = 1.05
    localization_radius: float = 4.0
    rotate: bool = False

    def validate(self, where: str) -> None:
        _ensemble(where, self.ensemble_size, self.inflation)
        positive(where, localization_radius=self.localization_radius)

    def build(self, ctx: MethodContext) -> FieldMethod:
        return letkf_method(
            ctx.ds,
            self.ensemble_size,
            radius=self.localization_radius,
            inflation=self.inflation,
            rotate=self.rotate,
            normaliser=ctx.normaliser,
        )


@FieldMethodConfig.register
@dataclass
class EnSFFieldConfig(FieldMethodConfig):
    """``ensf``: full-space EnSF with the solver (``scale`` resolves the likelihood for
    ``scale ≲ √steps σ̃``), per-member, mixture or Gaussian prior score."""

    tag: ClassVar[str] = "ensf"
    label: ClassVar[str] = "EnSF (full space)"
    grid: ClassVar[dict[str, list[Any]]] = {
        "scale": [1.0, 0.5],
        "eps_alpha": [0.05, 0.5],
        "prior_score": ["member", "mixture"],
    }
    name: str = "ensf"
    ensemble_size: int = 20
    scale: float = 1.0
    steps: int = 100
    eps_alpha: float = 0.05
    eps_beta: float = 0.0
    prior_score: PriorScoreName = "member"
    inflation: float = 1.0

    def validate(self, where: str) -> None:
        _ensemble(where, self.ensemble_size, self.inflation)
        _pseudo_time(where, self.steps, self.eps_alpha, self.eps_beta)
        positive(where, scale=self.scale)

    def build(self, ctx: MethodContext) -> FieldMethod:
        return ensf_method(
            ctx.ds,
            self.ensemble_size,
            scale=self.scale,
            steps=self.steps,
            eps_alpha=self.eps_alpha,
            eps_beta=self.eps_beta,
            inflation=self.inflation,
            prior_score=self.prior_score,
            normaliser=ctx.normaliser,
        )


@FieldMethodConfig.register
@dataclass
class LatentEnSFConfig(FieldMethodConfig):
    """``latent_ensf``: EnSF in the VAE's latent space with the solver's forecasts;
    ``noise_scale`` multiplies ``E_y``'s latent noise std."""

    tag: ClassVar[str] = "latent_ensf"
    label: ClassVar[str] = "Latent-EnSF"
    needs: ClassVar[tuple[str, ...]] = ("vae",)
    grid: ClassVar[dict[str, list[Any]]] = {
        "scale": [7.0, 3.0],
        "noise_scale": [1.0, 0.5, 2.0, 4.0],
    }
    name: str = "latent_ensf"
    ensemble_size: int = 20
    scale: float = 7.0
    steps: int = 100
    eps_alpha: float = 0.01
    eps_beta: float = 0.0
    noise_scale: float = 1.0

    def validate(self, where: str) -> None:
        _ensemble(where, self.ensemble_size)
        _pseudo_time(where, self.steps, self.eps_alpha, self.eps_beta)
        positive(where, scale=self.scale, noise_scale=self.noise_scale)

    def build(self, ctx: MethodContext) -> FieldMethod:
        return latent_ensf_method(
            ctx.ds,
            ctx.artefact("vae"),
            self.ensemble_size,
            scale=self.scale,
            steps=self.steps,
            eps_alpha=self.eps_alpha,
            eps_beta=self.eps_beta,
            noise_scale=self.noise_scale,
        )


@FieldMethodConfig.register
@dataclass
class FullNoAssimilationConfig(FieldMethodConfig):
    """``full_no_assimilation``: the full-space filters' prior ensemble run by the solver."""

    tag: ClassVar[str] = "full_no_assimilation"
    label: ClassVar[str] = "No assimilation (full-order model, prior ensemble)"
    name: str = "full_no_assimilation"
    ensemble_size: int = 20

    def validate(self, where: str) -> None:
        _ensemble(where, self.ensemble_size)

    def build(self, ctx: MethodContext) -> FieldMethod:
        return no_assimilation_method(ctx.ds, self.ensemble_size, ctx.normaliser)


@dataclass
class _WindowConfig(FieldMethodConfig):
    """The knobs of a window smoother: ``window`` observation times per window sliding by
    ``shift`` (default ``window``: disjoint windows), at most ``iterations`` Gauss–Newton
    steps until ``‖Δw‖ < tolerance``, ``inflation`` of the window-start analysis, with
    ``adaptive_inflation`` the innovation-based widening of each window's background and
    with ``member_starts`` the minimisation started at the best of the mean and the members;
    the benchmark searches window × inflation."""

    grid: ClassVar[dict[str, list[Any]]] = {
        "window": [4, 2, 8, 1],
        "inflation": [1.0, 1.1],
    }
    name: str = ""
    ensemble_size: int = 20
    window: int = 4
    shift: int | None = None
    iterations: int = 10
    tolerance: float = 1e-3
    inflation: float = 1.0
    #: Widen a window's background by the innovation-based factor before the minimisation
    #: (:func:`~latentda.filters.envar.innovation_inflation`): it kept LEVDA's parameter
    #: ensemble from collapsing onto a bound after a confident first window (bench
    #: Kolmogorov sparse, ten test trajectories: rel RMSE 0.237 -> 0.107), but hurt on the
    #: tests' tiny N = 8 moving-sensor case (0.289 against the free run's 0.236).
    adaptive_inflation: bool = True
    #: Start each window's minimisation at the best of the background mean and its members
    #: (:attr:`~latentda.filters.levda.LEVDA.member_starts`,
    #: :attr:`~latentda.filters.envar.FourDEnVar.member_starts`): the tsunami's window cost
    #: has several minima in the source position (LEVDA, ten bench validation trajectories:
    #: rel RMSE 0.490 -> 0.053).
    member_starts: bool = True

    def validate(self, where: str) -> None:
        _ensemble(where, self.ensemble_size)
        try:
            check_window_knobs(
                self.window, self.shift, self.iterations, self.tolerance, self.inflation
            )
        except ConfigError as exc:
            raise ConfigError(f"{where}.{exc}") from None


@FieldMethodConfig.register
@dataclass
class LEVDAConfig(_WindowConfig):
    """``levda``: latent ensemble-variational smoother through the LDNet (no encoder), with
    the window knobs, a parameter random walk ``param_jitter`` per window and
    ``model_error``: the LDNet's own error added to the readings' noise variance and carried
    by the scored members (:class:`~latentda.filters.levda.LEVDA`)."""

    tag: ClassVar[str] = "levda"
    label: ClassVar[str] = "LEVDA"
    needs: ClassVar[tuple[str, ...]] = ("ldnet",)
    name: str = "levda"
    param_jitter: float = 0.0
    model_error: bool = True

    def validate(self, where: str) -> None:
        super().validate(where)
        non_negative(where, param_jitter=self.param_jitter)

    def build(self, ctx: MethodContext) -> FieldMethod:
        smoother = LEVDA(
            ensemble_size=self.ensemble_size,
            window=self.window,
            shift=self.shift,
            iterations=self.iterations,
            tolerance=self.tolerance,
            inflation=self.inflation,
            param_jitter=self.param_jitter,
            model_error=self.model_error,
            adaptive_inflation=self.adaptive_inflation,
            member_starts=self.member_starts,
        )
        return LEVDAMethod(ctx.surrogate, smoother, model_error=self.model_error)


@FieldMethodConfig.register
@dataclass
class FourDEnVarFieldConfig(_WindowConfig):
    """``4denvar``: full-state 4DEnVar on ``[fields, parameters]`` with the solver and the
    window knobs (a stricter default ``tolerance``, :class:`FourDEnVar`'s)."""

    tag: ClassVar[str] = "4denvar"
    label: ClassVar[str] = "4DEnVar (full state)"
    name: str = "4denvar"
    tolerance: float = 1e-4

    def build(self, ctx: MethodContext) -> FieldMethod:
        smoother = FourDEnVar(
            window=self.window,
            shift=self.shift,
            iterations=self.iterations,
            tolerance=self.tolerance,
            inflation=self.inflation,
            adaptive_inflation=self.adaptive_inflation,
            member_starts=self.member_starts,
        )
        return FourDEnVarFieldMethod(
            SolverModel.from_dataset(ctx.ds, ctx.normaliser), smoother, self.ensemble_size
        )


#: Every field method by key, in the benchmark's column order.
METHODS: dict[str, type[FieldMethodConfig]] = FieldMethodConfig.registry
