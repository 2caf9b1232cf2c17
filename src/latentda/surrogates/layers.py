"""Building blocks shared by the surrogates: MLPs, residual MLPs, random Fourier features, the
phase inputs of a known periodic forcing."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from latentda.errors import ConfigError

#: Smooth activations only: LEVDA and the filters differentiate through the networks.
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


def activation(name: str) -> nn.Module:
    """The activation module called ``name``."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def mlp(n_in: int, width: int, n_out: int, hidden_layers: int, act: str) -> nn.Sequential:
    """``n_in -> width -> … -> n_out`` with ``hidden_layers`` hidden layers of ``width``."""
    sizes = [n_in] + [width] * hidden_layers + [n_out]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation(act))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """``y = σ(L₂ σ(L₁ x)) + x`` on ``(…, width)``."""

    def __init__(self, width: int, act: str) -> None:
        super().__init__()
        self.l1 = nn.Linear(width, width)
        self.l2 = nn.Linear(width, width)
        self.act = activation(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.l2(self.act(self.l1(x)))) + x


class FourierFeatures(nn.Module):
    """Random Fourier features ``γ(ξ) = [sin(2π B ξ), cos(2π B ξ)]`` of coordinates.

    ``B`` is ``(m, k)`` with entries ``N(0, scale²)`` drawn from ``seed``; a buffer (fixed) by
    default, a parameter when ``trainable``. On an axis ``a`` with period ``L_a`` (in the units
    of ``ξ``; ``periods[a]`` not ``None``) column ``a`` is snapped to the nearest multiple of
    ``1/L_a``, so every feature is exactly ``L_a``-periodic: a field on a periodic domain then
    has no seam, and each feature is a discrete Fourier mode of the grid. (A trainable ``B``
    starts periodic and is free to leave the lattice.) Input ``(…, k)`` -> output ``(…, 2m)``.
    """

    def __init__(
        self,
        k: int,
        m: int,
        scale: float,
        seed: int,
        trainable: bool,
        periods: tuple[float | None, ...] | None = None,
    ) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        b = torch.randn(m, k, generator=gen) * scale
        for a, period in enumerate(periods or ()):
            if period is not None:
                b[:, a] = torch.round(b[:, a] * period) / period
        if trainable:
            self.B = nn.Parameter(b)
        else:
            self.register_buffer("B", b)

    def forward(self, xi: Tensor) -> Tensor:
        proj = (2.0 * math.pi) * (xi @ self.B.T)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


@dataclass(frozen=True)
class ForcingClock:
    """Phase of a known, parameter-independent periodic forcing at frame ``k``.

    Parameters
    ----------
    periods
        Forcing periods ``P_i`` in frame spacings (the sphere: 3 for the daily turn of its
        source, 126 for its 42-day latitude swing).
    start
        Time of frame 0 in frame spacings, ``k₀`` (the spin-up).
    """

    periods: tuple[float, ...]
    start: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"periods": list(self.periods), "start": self.start}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ForcingClock | None:
        """Inverse of :meth:`to_dict`; ``None`` (a checkpoint without a clock) stays ``None``."""
        if data is None:
            return None
        return cls(tuple(float(p) for p in data["periods"]), float(data["start"]))

    @property
    def dim(self) -> int:
        """``2m`` for ``m`` periods."""
        return 2 * len(self.periods)

    def features(self, k: float | Tensor, like: Tensor) -> Tensor:
        """``φ(k)`` ``(…, 2m)`` for frame indices ``k`` (float or ``(…,)``, any real: a step may
        start between frames), with the dtype and device of ``like``."""
        k = torch.as_tensor(k, dtype=torch.float64)
        periods = torch.tensor(self.periods, dtype=torch.float64)
        angle = 2 * torch.pi * (self.start + k[..., None]) / periods
        return torch.cat([angle.cos(), angle.sin()], dim=-1).to(like)


def concat_inputs(parts: Sequence[Tensor]) -> Tensor:
    """Concatenate ``parts`` ``(…_i, n_i)`` on the last axis after broadcasting their leading
    axes, e.g. per-member parameters ``(N, p)`` with one phase ``(2m,)`` for all members."""
    batch = torch.broadcast_shapes(*(x.shape[:-1] for x in parts))
    return torch.cat([x.expand(*batch, -1) for x in parts], dim=-1)
