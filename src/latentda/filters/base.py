"""The :class:`Filter` protocol and the observation-space quantities shared by Kalman-type
filters."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from latentda.errors import ConfigError, DataError
from latentda.filters.ensemble import inflate, rotate
from latentda.observations.observer import Observer, present_mask


@runtime_checkable
class Filter(Protocol):
    """An analysis scheme.

    ``analysis(E, y, observer, gen)`` maps a forecast ensemble ``E`` ``(N, d)`` and an
    observation ``y`` ``(m,)`` (NaN entries are missing readings) to an analysis ensemble
    ``(N, d)``. With no present reading the analysis is the forecast (Bayes with no data).
    """

    def analysis(
        self, ensemble: Tensor, y: Tensor, observer: Observer, gen: torch.Generator
    ) -> Tensor: ...


@dataclass(frozen=True)
class ObsSpace:
    """Standardised observation-space ensemble quantities over the present readings.

    With ``σ`` the noise standard deviations and ``HE`` the observed ensemble ``(N, m)``:
    ``Ys = (HE − mean HE)/σ`` ``(N, m')``, ``dy = (y − mean HE)/σ`` ``(m',)``, where ``m'`` counts
    the present readings and ``index`` ``(m',)`` says which ones they are.
    """

    Ys: Tensor
    dy: Tensor
    HE: Tensor
    index: Tensor
    std: Tensor


def observation_space(E: Tensor, y: Tensor, observer: Observer) -> ObsSpace | None:
    """Observe the ensemble and standardise; ``None`` when no reading is present."""
    if y.ndim != 1 or y.shape[0] != observer.out_dim:
        raise DataError(f"observation has shape {tuple(y.shape)}, expected ({observer.out_dim},)")
    mask = present_mask(y)
    if not bool(mask.any()):
        return None
    index = torch.nonzero(mask).flatten()
    HE = observer(E)[:, index]
    std = observer.noise_std.to(device=E.device, dtype=E.dtype)[index]
    hmean = HE.mean(dim=0)
    return ObsSpace(
        Ys=(HE - hmean) / std,
        dy=(y[index].to(E.dtype) - hmean) / std,
        HE=HE,
        index=index,
        std=std,
    )


@dataclass(frozen=True)
class EnsembleKalmanFilter(ABC):
    """Template of the Kalman-type filters: standardise the present readings, update, then
    post-process as DAPPER does: multiplicative inflation of the analysis anomalies by
    ``inflation`` and, if ``rotate``, a random mean-preserving rotation of the members.

    Subclasses implement :meth:`update`.
    """

    inflation: float = 1.0
    rotate: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.inflation) and self.inflation > 0):
            raise ConfigError(f"inflation must be finite and > 0, got {self.inflation}")

    @abstractmethod
    def update(
        self, ensemble: Tensor, y: Tensor, obs: ObsSpace, observer: Observer, gen: torch.Generator
    ) -> Tensor:
        """Analysis ensemble ``(N, d)`` before post-processing."""

    def analysis(
        self, ensemble: Tensor, y: Tensor, observer: Observer, gen: torch.Generator
    ) -> Tensor:
        """Analysis of ``ensemble`` ``(N, d)`` given ``y`` ``(m,)`` (NaN = missing)."""
        obs = observation_space(ensemble, y, observer)
        if obs is None:
            return ensemble
        Ea = inflate(self.update(ensemble, y, obs, observer, gen), self.inflation)
        return rotate(Ea, gen) if self.rotate else Ea
