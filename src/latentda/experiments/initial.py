"""How the initial ensemble is drawn (strategies): around the truth, from a Gaussian that does
not know the truth, or from the model's climatology."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from latentda.errors import ConfigError
from latentda.systems.base import System, integrate


class InitialEnsemble(ABC):
    """Strategy drawing ``n`` initial members ``(n, d)``."""

    @abstractmethod
    def sample(self, truth: Tensor, n: int, system: System, gen: torch.Generator) -> Tensor:
        """Members ``(n, d)`` given the initial truth ``(d,)`` (which a fair strategy ignores)."""


@dataclass(frozen=True)
class AroundTruth(InitialEnsemble):
    """``x_0 + N(0, spread² I)``: the classical twin-experiment start."""

    spread: float = 1.0

    def __post_init__(self) -> None:
        if not self.spread >= 0:
            raise ConfigError(f"initial.spread must be >= 0, got {self.spread}")

    def sample(self, truth: Tensor, n: int, system: System, gen: torch.Generator) -> Tensor:
        noise = torch.randn(n, truth.shape[-1], generator=gen, dtype=truth.dtype)
        return truth + self.spread * noise


@dataclass(frozen=True)
class Gaussian(InitialEnsemble):
    """``N(mean, std² I)`` independent of the truth (e.g. the EnSF paper's ``N(0, I)``)."""

    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        if not self.std > 0:
            raise ConfigError(f"initial.gaussian.std must be > 0, got {self.std}")

    def sample(self, truth: Tensor, n: int, system: System, gen: torch.Generator) -> Tensor:
        noise = torch.randn(n, truth.shape[-1], generator=gen, dtype=truth.dtype)
        return self.mean + self.std * noise


@dataclass(frozen=True)
class Climatology(InitialEnsemble):
    """States of one long free run, ``spacing`` steps apart after ``spinup`` steps, started
    from the model's own random initial state (independent of the truth)."""

    spinup: int = 1000
    spacing: int = 50

    def sample(self, truth: Tensor, n: int, system: System, gen: torch.Generator) -> Tensor:
        u = system.sample_params(1, gen)
        x = system.initial_state(u, gen).to(truth.dtype)
        x = integrate(system, x, u, self.spinup)
        members = []
        for _ in range(n):
            x = integrate(system, x, u, self.spacing)
            members.append(x[0])
        return torch.stack(members)
