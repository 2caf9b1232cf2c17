"""An :class:`Observer` couples an operator ``H`` with additive Gaussian noise ``N(0, diag σ²)``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from latentda.errors import ConfigError
from latentda.observations.operators import ObservationOperator


def present_mask(y: Tensor) -> Tensor:
    """Boolean mask ``(m,)`` of readings that are present (finite); NaN means missing."""
    return torch.isfinite(y)


@dataclass
class Observer:
    """Sensors reading a state: ``y = H(x) + ε``, ``ε ~ N(0, diag(noise_std²))``.

    Parameters
    ----------
    operator
        The observation operator ``H``, states ``(..., d)`` -> ``(..., m)``.
    noise_std
        Per-reading noise standard deviation, a float or a tensor ``(m,)``.
    """

    operator: ObservationOperator
    noise_std: Tensor | float

    def __post_init__(self) -> None:
        std = torch.as_tensor(self.noise_std, dtype=torch.float64)
        if std.ndim == 0:
            std = std.expand(self.operator.out_dim).clone()
        if std.shape != (self.operator.out_dim,):
            raise ConfigError(
                f"noise_std has shape {tuple(std.shape)}, expected ({self.operator.out_dim},)"
            )
        if not (torch.isfinite(std).all() and (std > 0).all()):
            raise ConfigError("noise_std must be finite and > 0")
        self.noise_std = std

    @property
    def out_dim(self) -> int:
        return self.operator.out_dim

    @property
    def locations(self) -> Tensor:
        """Sensor coordinates ``(m, space_dim)``."""
        return self.operator.locations

    def __call__(self, x: Tensor) -> Tensor:
        """Noise-free readings ``H(x)``, ``(..., d)`` -> ``(..., m)``."""
        return self.operator(x)

    def observe(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """Noisy readings ``H(x) + ε`` of one state ``(d,)`` (or a batch ``(B, d)``)."""
        hx = self.operator(x)
        eps = torch.randn(hx.shape, generator=gen, dtype=hx.dtype)
        return hx + eps * self.noise_std.to(hx.dtype)
