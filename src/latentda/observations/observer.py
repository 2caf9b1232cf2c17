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

    def precision(
        self, y: Tensor, dtype: torch.dtype, device: torch.device
    ) -> tuple[Tensor, Tensor]:
        """``(y₀, w)``: the readings with NaN replaced by 0 and their weights ``1/σ²`` (0 where
        missing), both ``(m,)``; computed once per analysis, reused at every score call."""
        present = present_mask(y)
        w = torch.where(present, 1.0 / self.noise_std.to(y.device) ** 2, 0.0)
        y0 = torch.nan_to_num(y, nan=0.0)
        return y0.to(device=device, dtype=dtype), w.to(device=device, dtype=dtype)

    def log_likelihood_grad(self, x: Tensor, y0: Tensor, weight: Tensor) -> Tensor:
        """``∇_x log p(y | x) = J_H(x)ᵀ diag(w) (y₀ − H(x))`` with ``(y₀, w)`` from
        :meth:`precision`: missing readings carry weight zero, so no gather is needed and the
        cost is that of one ``H`` and one ``J_Hᵀ`` product. ``x`` ``(B, d)`` -> ``(B, d)``."""
        return self.operator.vjp(x, (y0 - self.operator(x)) * weight)

    def observe(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """Noisy readings ``H(x) + ε`` of one state ``(d,)`` (or a batch ``(B, d)``)."""
        hx = self.operator(x)
        eps = torch.randn(hx.shape, generator=gen, dtype=hx.dtype)
        return hx + eps * self.noise_std.to(hx.dtype)
