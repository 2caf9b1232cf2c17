"""The twin-experiment configuration (DESIGN section 8): YAML -> typed dataclasses -> objects.

Each family (system, method) is a :class:`~latentda.schema.Tagged` set of
dataclasses; each knows how to ``build`` its runtime object, so adding a method is one class
here and nothing elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import yaml

from latentda.errors import ConfigError
from latentda.experiments.initial import AroundTruth, Climatology, Gaussian, InitialEnsemble
from latentda.experiments.twin import TwinExperiment
from latentda.filters import (
    ETKF,
    LETKF,
    EnSF,
    GaspariCohn,
    LinearSchedule,
    PeriodicDistance,
    StochasticEnKF,
)
from latentda.filters.base import Filter
from latentda.filters.ensf import PriorScoreName, make_prior_score
from latentda.filters.envar import FourDEnVar, WindowSmoother
from latentda.observations import (
    Arctan,
    EverySchedule,
    Identity,
    ObservationOperator,
    Observer,
    PeriodicInterpolation,
    Subset,
    TimesSchedule,
)
from latentda.observations.schedule import ObservationSchedule
from latentda.schema import Tagged, non_negative, parse, positive
from latentda.systems import Lorenz96

# --------------------------------------------------------------------------- systems


@dataclass
class SystemConfig(Tagged):
    """A full-order model."""

    registry: ClassVar[dict[str, type]] = {}


@SystemConfig.register
@dataclass
class Lorenz96Config(SystemConfig):
    """``lorenz96``: ``dim`` variables, forcing ``F``, RK4 step ``dt``."""

    tag: ClassVar[str] = "lorenz96"
    name: str = "lorenz96"
    dim: int = 40
    forcing: float = 8.0
    dt: float = 0.05

    def validate(self, where: str) -> None:
        if self.dim < 4:
            raise ConfigError(f"{where}.dim must be >= 4, got {self.dim}")
        positive(where, dt=self.dt)

    def build(self) -> Lorenz96:
        return Lorenz96(dim=self.dim, forcing=self.forcing, dt=self.dt)


# --------------------------------------------------------------------------- observations


@dataclass
class ObservationsConfig:
    """Sensors, noise and timing.

    ``operator``: ``identity`` (every variable), ``subset`` (``indices`` or every ``stride``-th
    variable), ``interpolate`` (sensors at real ``positions`` on the periodic grid), ``arctan``
    (``arctan`` of every variable, or of ``indices`` if given). ``every``: observe every k-th
    model step, or ``steps``: irregular list of observed model steps. ``missing``: probability
    that a reading is missing (NaN).
    """

    operator: Literal["identity", "subset", "interpolate", "arctan"] = "identity"
    noise_std: float = 1.0
    every: int = 1
    steps: list[int] | None = None
    indices: list[int] | None = None
    stride: int | None = None
    positions: list[float] | None = None
    missing: float = 0.0

    def validate(self, where: str) -> None:
        positive(where, noise_std=self.noise_std, every=self.every)
        if not 0.0 <= self.missing <= 1.0:
            raise ConfigError(f"{where}.missing must lie in [0, 1], got {self.missing}")
        if self.stride is not None:
            positive(where, stride=self.stride)
        if self.operator == "subset" and (self.indices is None) == (self.stride is None):
            raise ConfigError(f"{where}: operator 'subset' needs exactly one of indices, stride")
        if self.operator == "interpolate" and not self.positions:
            raise ConfigError(f"{where}: operator 'interpolate' needs positions")

    def build_operator(self, dim: int) -> ObservationOperator:
        if self.operator == "identity":
            return Identity(dim)
        if self.operator == "interpolate":
            return PeriodicInterpolation(self.positions or [], dim)
        if self.indices is not None or self.stride is not None:
            idx = (
                self.indices if self.indices is not None else list(range(0, dim, self.stride or 1))
            )
            inner: ObservationOperator = Subset(idx, dim)
        else:
            inner = Identity(dim)
        return Arctan(inner) if self.operator == "arctan" else inner

    def build_observer(self, dim: int) -> Observer:
        return Observer(self.build_operator(dim), self.noise_std)

    def build_schedule(self) -> ObservationSchedule:
        if self.steps is not None:
            return TimesSchedule(tuple(self.steps))
        return EverySchedule(self.every)


# --------------------------------------------------------------------------- methods


@dataclass
class MethodConfig(Tagged):
    """An analysis scheme and its ensemble size."""

    registry: ClassVar[dict[str, type]] = {}

    def build(self, system: Lorenz96) -> Filter | WindowSmoother:  # pragma: no cover - abstract
        raise NotImplementedError


@MethodConfig.register
@dataclass
class EnKFConfig(MethodConfig):
    """``enkf``: ``variant: sqrt`` (ETKF, symmetric square root) or ``stochastic``."""

    tag: ClassVar[str] = "enkf"
    name: str = "enkf"
    variant: Literal["sqrt", "stochastic"] = "sqrt"
    ensemble_size: int = 20
    inflation: float = 1.0
    rotate: bool = False

    def validate(self, where: str) -> None:
        _check_ensemble(where, self.ensemble_size, self.inflation)

    def build(self, system: Lorenz96) -> Filter:
        cls = ETKF if self.variant == "sqrt" else StochasticEnKF
        return cls(inflation=self.inflation, rotate=self.rotate)


@MethodConfig.register
@dataclass
class LETKFConfig(MethodConfig):
    """``letkf``: local ETKF with Gaspari–Cohn R-localisation of length ``localization_radius``
    (grid units; ``.inf`` for none)."""

    tag: ClassVar[str] = "letkf"
    name: str = "letkf"
    ensemble_size: int = 20
    inflation: float = 1.0
    rotate: bool = False
    localization_radius: float = 4.0

    def validate(self, where: str) -> None:
        _check_ensemble(where, self.ensemble_size, self.inflation)
        positive(where, localization_radius=self.localization_radius)

    def build(self, system: Lorenz96) -> Filter:
        return LETKF(
            coords=system.coords(),
            distance=PeriodicDistance(system.domain_lengths),
            taper=GaspariCohn(self.localization_radius),
            inflation=self.inflation,
            rotate=self.rotate,
        )


@MethodConfig.register
@dataclass
class EnSFConfig(MethodConfig):
    """``ensf``: ensemble score filter (DESIGN 6.2)."""

    tag: ClassVar[str] = "ensf"
    name: str = "ensf"
    ensemble_size: int = 20
    steps: int = 100
    eps_alpha: float = 0.05
    eps_beta: float = 0.0
    scale: float = 1.0
    prior_score: PriorScoreName = "member"
    score_clip: float | None = None
    inflation: float = 1.0

    def validate(self, where: str) -> None:
        _check_ensemble(where, self.ensemble_size, self.inflation)
        positive(where, steps=self.steps, scale=self.scale)
        non_negative(where, eps_alpha=self.eps_alpha, eps_beta=self.eps_beta)
        for key in ("eps_alpha", "eps_beta"):
            if getattr(self, key) >= 1:
                raise ConfigError(f"{where}.{key} must be < 1, got {getattr(self, key)}")

    def build(self, system: Lorenz96) -> Filter:
        return EnSF(
            steps=self.steps,
            schedule=LinearSchedule(self.eps_alpha, self.eps_beta),
            prior_score=make_prior_score(self.prior_score),
            scale=self.scale,
            score_clip=self.score_clip,
            inflation=self.inflation,
        )


@MethodConfig.register
@dataclass
class FourDEnVarConfig(MethodConfig):
    """``4denvar``: full-state ensemble-variational smoother (DESIGN 6.5), ``window``
    observation times per window sliding by ``shift`` (default: ``window``, disjoint windows;
    1 is DAPPER's iEnKS cycling), at most ``iterations`` Gauss–Newton steps, stopping when
    ``‖Δw‖ < tolerance``."""

    tag: ClassVar[str] = "4denvar"
    name: str = "4denvar"
    ensemble_size: int = 20
    window: int = 4
    shift: int | None = None
    iterations: int = 10
    tolerance: float = 1e-4
    inflation: float = 1.0
    rotate: bool = False

    def validate(self, where: str) -> None:
        _check_ensemble(where, self.ensemble_size, self.inflation)
        positive(where, window=self.window, iterations=self.iterations, tolerance=self.tolerance)
        if self.shift is not None and not 1 <= self.shift <= self.window:
            raise ConfigError(
                f"{where}.shift must lie in [1, window={self.window}], got {self.shift}"
            )

    def build(self, system: Lorenz96) -> FourDEnVar:
        return FourDEnVar(
            window=self.window,
            shift=self.shift,
            iterations=self.iterations,
            tolerance=self.tolerance,
            inflation=self.inflation,
            rotate=self.rotate,
        )


def _check_ensemble(where: str, n: int, inflation: float) -> None:
    if n < 2:
        raise ConfigError(f"{where}.ensemble_size must be >= 2, got {n}")
    if not (math.isfinite(inflation) and inflation > 0):
        raise ConfigError(f"{where}.inflation must be finite and > 0, got {inflation}")


# --------------------------------------------------------------------------- initial ensemble


@dataclass
class GaussianInitConfig:
    mean: float = 0.0
    std: float = 1.0

    def validate(self, where: str) -> None:
        positive(where, std=self.std)


@dataclass
class InitialConfig:
    """Exactly one of ``spread`` (truth + N(0, S²)), ``gaussian`` (independent of the truth) or
    ``climatology: true`` (states from a long free run)."""

    spread: float | None = None
    gaussian: GaussianInitConfig | None = None
    climatology: bool | None = None

    def validate(self, where: str) -> None:
        given = [k for k in ("spread", "gaussian", "climatology") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ConfigError(f"{where}: give one of spread, gaussian, climatology; got {given}")
        if self.spread is not None:
            non_negative(where, spread=self.spread)
        if self.climatology is False:
            raise ConfigError(f"{where}.climatology: only 'true' is meaningful")

    def build(self) -> InitialEnsemble:
        if self.gaussian is not None:
            return Gaussian(self.gaussian.mean, self.gaussian.std)
        if self.climatology:
            return Climatology()
        return AroundTruth(1.0 if self.spread is None else self.spread)


# --------------------------------------------------------------------------- experiment


@dataclass
class TwinConfig:
    """A whole twin experiment (the YAML file)."""

    system: SystemConfig
    method: MethodConfig
    observations: ObservationsConfig = field(default_factory=ObservationsConfig)
    cycles: int = 1000
    burn_in: int = 0
    seed: int = 0
    initial: InitialConfig = field(default_factory=InitialConfig)
    spinup: int = 1000
    dtype: Literal["float64", "float32"] = "float64"

    def validate(self, where: str) -> None:
        positive(where, cycles=self.cycles)
        non_negative(where, burn_in=self.burn_in, spinup=self.spinup, seed=self.seed)
        if self.burn_in >= self.cycles:
            raise ConfigError(
                f"{where}.burn_in ({self.burn_in}) must be smaller than cycles ({self.cycles})"
            )
        obs = self.observations
        if obs.steps is not None and len(obs.steps) < self.cycles:
            raise ConfigError(
                f"{where}.observations.steps lists {len(obs.steps)} times, cycles is {self.cycles}"
            )
        dim = getattr(self.system, "dim", None)
        for key, idx in (("indices", obs.indices), ("positions", obs.positions)):
            if dim is not None and idx is not None and any(not 0 <= i < dim for i in idx):
                raise ConfigError(
                    f"{where}.observations.{key} must lie in [0, {dim}) for system dim {dim}"
                )

    def build(self) -> TwinExperiment:
        system = self.system.build()  # type: ignore[attr-defined]
        return TwinExperiment(
            system=system,
            observer=self.observations.build_observer(system.dim),
            filter=self.method.build(system),
            ensemble_size=self.method.ensemble_size,  # type: ignore[attr-defined]
            cycles=self.cycles,
            schedule=self.observations.build_schedule(),
            burn_in=self.burn_in,
            initial=self.initial.build(),
            seed=self.seed,
            missing=self.observations.missing,
            spinup=self.spinup,
            dtype=getattr(torch, self.dtype),
        )


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["method.ensemble_size=20", ...]`` -> nested dict (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {pair!r} is not KEY=VALUE (e.g. method.inflation=1.02)")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {pair!r}: bad value ({exc.__class__.__name__})") from None
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {pair!r} conflicts with another override")
        node[parts[-1]] = value
    return out


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``over`` wins."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with one-line errors for missing or malformed files."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read ({exc.__class__.__name__})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid syntax"
        raise ConfigError(f"{p}: malformed YAML{at}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a YAML mapping at the top level")
    return data


def twin_config(data: dict[str, Any], overrides: list[str] | None = None) -> TwinConfig:
    """Validate a twin-experiment mapping (plus ``KEY=VALUE`` overrides)."""
    if overrides:
        data = merge(data, parse_overrides(overrides))
    return parse(TwinConfig, data, "config")
