"""Observers: where sensors are, how they read a state, their noise, and when data arrive."""

from latentda.observations.observer import Observer, present_mask
from latentda.observations.operators import (
    Arctan,
    Identity,
    LinearMap,
    ObservationOperator,
    PeriodicInterpolation,
    Subset,
)
from latentda.observations.schedule import EverySchedule, ObservationSchedule, TimesSchedule

__all__ = [
    "Arctan",
    "EverySchedule",
    "Identity",
    "LinearMap",
    "ObservationOperator",
    "ObservationSchedule",
    "Observer",
    "PeriodicInterpolation",
    "Subset",
    "TimesSchedule",
    "present_mask",
]
