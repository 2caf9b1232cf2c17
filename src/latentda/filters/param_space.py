"""The coordinates in which an ensemble analysis moves the normalised parameters.

The systems' priors and the LDNet know the normalised parameters ``u`` only on the box
``[-1, 1]^p``. A Gaussian analysis (an ensemble transform, a Gauss–Newton step) knows
nothing of the box, so a strategy says in which coordinates ``v`` of ``u`` it works and how
the result is read back:

- :class:`Identity` (``v = u``): the analysis moves ``u`` itself and the members are then
  clipped onto the box (:func:`~latentda.filters.ensemble.clip_params`). Members pushed
  past a bound all land on it, so the ensemble's spread in that direction becomes zero and
  no later analysis reopens it (inflation multiplies a zero anomaly): the parameter stays
  on the bound. On the bench tsunami, LEVDA ended 3 of 10 paper-setting test trajectories
  this way (all members at the edge of the source box, relative error ≈ 1).
- :class:`Artanh` (``v = artanh u``, ``u = tanh v``): the uniform prior ``U(−1, 1)`` becomes
  the logistic distribution of scale ½ (density ½ sech² v, std π/(2√3) ≈ 0.91): unbounded
  and bell-shaped, as a Gaussian analysis assumes. A member may approach a bound but never
  reach it, and ``u(v)`` is smooth (``du/dv = 1 − u²``), so Gauss–Newton keeps a direction
  in which to move it back.

Both are applied to the parameter columns of an augmented ensemble ``κ = [x, u]``
``(…, d + p)``: :meth:`ParamSpace.to_control` before the analysis,
:meth:`ParamSpace.to_params` inside the cost (differentiable) and after it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor


class ParamSpace(ABC):
    """Coordinates ``v = f(u)`` of the parameter columns for an analysis (see the module
    docstring); subclasses give ``f`` and its inverse on the parameter block."""

    #: The key of the strategy in configuration files.
    name: ClassVar[str]

    @abstractmethod
    def forward(self, u: Tensor) -> Tensor:
        """``v = f(u)`` elementwise, for ``u`` in ``[-1, 1]``."""

    @abstractmethod
    def inverse(self, v: Tensor) -> Tensor:
        """``u = f⁻¹(v)`` elementwise (differentiable)."""

    def to_control(self, kappa: Tensor, d: int) -> Tensor:
        """``[κ_{…, :d}, f(κ_{…, d:})]`` ``(…, d + p)``: ``d`` leading (state or latent)
        columns, then the parameters."""
        return torch.cat([kappa[..., :d], self.forward(kappa[..., d:])], dim=-1)

    def to_params(self, kappa: Tensor, d: int) -> Tensor:
        """``[κ_{…, :d}, f⁻¹(κ_{…, d:})]`` ``(…, d + p)``, the inverse of :meth:`to_control`."""
        return torch.cat([kappa[..., :d], self.inverse(kappa[..., d:])], dim=-1)


class Identity(ParamSpace):
    """``v = u``: the analysis moves ``u`` itself (clip onto the box afterwards)."""

    name = "identity"

    def forward(self, u: Tensor) -> Tensor:
        return u

    def inverse(self, v: Tensor) -> Tensor:
        return v


class Artanh(ParamSpace):
    """``v = artanh(u)``, ``u = tanh(v)``: the box becomes the whole line.

    Parameters
    ----------
    margin
        ``u`` is clamped to ``[−1 + margin, 1 − margin]`` before ``artanh`` (a member
        exactly on a bound, e.g. a prior draw of ``−1`` or a clipped member, would be
        infinite): ``|v| ≤ artanh(1 − margin)`` (7.25 for the default).
    """

    name = "artanh"

    def __init__(self, margin: float = 1e-6) -> None:
        if not 0.0 < margin < 1.0:
            raise ValueError(f"margin must be in (0, 1), got {margin}")
        self.margin = margin

    def forward(self, u: Tensor) -> Tensor:
        return torch.atanh(u.clamp(-1.0 + self.margin, 1.0 - self.margin))

    def inverse(self, v: Tensor) -> Tensor:
        return torch.tanh(v)


#: The strategies by configuration key.
PARAM_SPACES: dict[str, type[ParamSpace]] = {cls.name: cls for cls in (Identity, Artanh)}
