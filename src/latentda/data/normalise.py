"""Normalisation statistics of a dataset: per-channel z-scores and parameters to [-1, 1].

Statistics come from the **training split only**, so validation and test trajectories never
influence a model, and are stored in every checkpoint (plain JSON lists) so that a model is
always applied with the statistics it was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from latentda.errors import DataError


@dataclass(frozen=True)
class Normaliser:
    """Affine maps between physical and normalised units.

    Fields: ``x̃ = (x − μ_c) / σ_c`` per channel ``c``; parameters:
    ``ũ = 2 (u − u_lo) / (u_hi − u_lo) − 1``, so the prior's support maps onto ``[-1, 1]``.

    Attributes
    ----------
    channel_mean, channel_std
        ``(C,)`` float64: ``μ_c`` and ``σ_c`` over trajectories, frames and grid points.
    param_low, param_high
        ``(p,)`` float64: the support of the uniform parameter prior.
    """

    channel_mean: Tensor
    channel_std: Tensor
    param_low: Tensor
    param_high: Tensor

    def __post_init__(self) -> None:
        if (self.channel_std <= 0).any() or not torch.isfinite(self.channel_std).all():
            raise DataError(
                f"channel standard deviations must be finite and > 0, got "
                f"{self.channel_std.tolist()}"
            )
        if (self.param_high <= self.param_low).any():
            raise DataError("parameter bounds must satisfy low < high")

    # ------------------------------------------------------------------ fields
    def _channel(self, v: Tensor, like: Tensor, channel_axis: int) -> Tensor:
        shape = [1] * like.ndim
        shape[channel_axis] = -1
        return v.to(device=like.device, dtype=like.dtype).reshape(shape)

    def normalise_fields(self, x: Tensor, channel_axis: int = -3) -> Tensor:
        """``(x − μ) / σ`` with the channels on ``channel_axis`` (``-3`` for ``(…, C, H, W)``,
        ``-1`` for point values ``(…, P, C)``)."""
        mu = self._channel(self.channel_mean, x, channel_axis)
        return (x - mu) / self._channel(self.channel_std, x, channel_axis)

    def denormalise_fields(self, x: Tensor, channel_axis: int = -3) -> Tensor:
        """Inverse of :meth:`normalise_fields`."""
        sd = self._channel(self.channel_std, x, channel_axis)
        return x * sd + self._channel(self.channel_mean, x, channel_axis)

    # ------------------------------------------------------------------ parameters
    def normalise_params(self, u: Tensor) -> Tensor:
        """Physical parameters ``(…, p)`` -> ``[-1, 1]`` on the prior's support."""
        lo = self.param_low.to(device=u.device, dtype=u.dtype)
        hi = self.param_high.to(device=u.device, dtype=u.dtype)
        return 2.0 * (u - lo) / (hi - lo) - 1.0

    def denormalise_params(self, u: Tensor) -> Tensor:
        """Inverse of :meth:`normalise_params`."""
        lo = self.param_low.to(device=u.device, dtype=u.dtype)
        hi = self.param_high.to(device=u.device, dtype=u.dtype)
        return lo + (u + 1.0) * 0.5 * (hi - lo)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k).tolist() for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normaliser:
        try:
            return cls(**{k: torch.tensor(data[k], dtype=torch.float64) for k in _FIELDS})
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed normalisation statistics: {exc}") from None

    @classmethod
    def fit(cls, fields: Tensor, param_low: Tensor, param_high: Tensor) -> Normaliser:
        """Statistics of training fields ``(n, T, C, *spatial)`` (computed in float64)."""
        c = fields.shape[2]
        flat = fields.transpose(0, 2).reshape(c, -1).to(torch.float64)
        return cls(flat.mean(1), flat.std(1), param_low.double(), param_high.double())


_FIELDS = ("channel_mean", "channel_std", "param_low", "param_high")
