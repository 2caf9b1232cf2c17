"""When observations arrive: a set of model-step indices (1-based: step k is after k steps)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from latentda.errors import ConfigError


class ObservationSchedule(ABC):
    """Maps an analysis cycle ``c = 1, 2, …`` to the model step at which its data arrive."""

    @abstractmethod
    def step_of_cycle(self, cycle: int) -> int:
        """Model step (>= 1) of the ``cycle``-th observation time."""

    def steps_before(self, cycle: int) -> int:
        """Model steps between the previous observation time and this one."""
        prev = 0 if cycle == 1 else self.step_of_cycle(cycle - 1)
        return self.step_of_cycle(cycle) - prev


@dataclass(frozen=True)
class EverySchedule(ObservationSchedule):
    """Observe every ``every``-th model step: steps ``every, 2·every, …``."""

    every: int = 1

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ConfigError(f"observations.every must be >= 1, got {self.every}")

    def step_of_cycle(self, cycle: int) -> int:
        return cycle * self.every


@dataclass(frozen=True)
class TimesSchedule(ObservationSchedule):
    """Observe at the given strictly increasing model steps (irregular times)."""

    steps: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.steps or self.steps[0] < 1:
            raise ConfigError("observation steps must be a non-empty list starting at >= 1")
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ConfigError("observation steps must be strictly increasing")

    def step_of_cycle(self, cycle: int) -> int:
        if cycle > len(self.steps):
            raise ConfigError(f"only {len(self.steps)} observation times given, asked for {cycle}")
        return self.steps[cycle - 1]
