"""Observers: where sensors are, how they read a state, their noise, and when data arrive."""

from latentda.observations.grid import BilinearGrid, noise_std_from_level
from latentda.observations.layouts import (
    fraction_to_count,
    from_file,
    moving,
    regular_subgrid,
    uniform_random,
)
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
    "BilinearGrid",
    "EverySchedule",
    "Identity",
    "LinearMap",
    "ObservationOperator",
    "ObservationSchedule",
    "Observer",
    "PeriodicInterpolation",
    "Subset",
    "TimesSchedule",
    "fraction_to_count",
    "from_file",
    "moving",
    "noise_std_from_level",
    "present_mask",
    "regular_subgrid",
    "uniform_random",
]
