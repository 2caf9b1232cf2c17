"""Sensor settings of an experiment: where the sensors are (a layout strategy), how noisy
they are, and how often they report; plus reading gridded fields at the sensors.

Noise follows DESIGN section 4: ``σ_c = level × std_c`` with ``std_c`` the per-channel
standard deviation of the training data, so ``level = 0.1`` is "10 % noise".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from latentda.observations.grid import BilinearGrid
from latentda.observations.layouts import from_file, regular_subgrid, uniform_random
from latentda.schema import Tagged, non_negative, positive


@dataclass
class Layout(Tagged):
    """Where the sensors are: ``points(axes, periodic, gen) -> (S, 2)`` in grid units."""

    registry: ClassVar[dict[str, type]] = {}
    default_tag: ClassVar[str | None] = "regular"

    def points(
        self, axes: list[Tensor], periodic: tuple[bool, bool], gen: torch.Generator
    ) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


@Layout.register
@dataclass
class RegularLayout(Layout):
    """An evenly spread ``ny × nx`` sub-grid (the LD-EnSF paper's 10×10)."""

    tag: ClassVar[str] = "regular"
    name: str = "regular"
    ny: int = 10
    nx: int = 10

    def validate(self, where: str) -> None:
        positive(where, ny=self.ny, nx=self.nx)

    def points(
        self, axes: list[Tensor], periodic: tuple[bool, bool], gen: torch.Generator
    ) -> Tensor:
        return regular_subgrid((axes[0], axes[1]), self.ny, self.nx)


@Layout.register
@dataclass
class RandomLayout(Layout):
    """``count`` sensors uniformly at random over the domain (drawn from ``gen``)."""

    tag: ClassVar[str] = "random"
    name: str = "random"
    count: int = 100

    def validate(self, where: str) -> None:
        positive(where, count=self.count)

    def points(
        self, axes: list[Tensor], periodic: tuple[bool, bool], gen: torch.Generator
    ) -> Tensor:
        return uniform_random((axes[0], axes[1]), self.count, gen, periodic)


@Layout.register
@dataclass
class FileLayout(Layout):
    """Sensor coordinates read from a file (see :func:`.layouts.from_file`)."""

    tag: ClassVar[str] = "file"
    name: str = "file"
    path: str = ""

    def points(
        self, axes: list[Tensor], periodic: tuple[bool, bool], gen: torch.Generator
    ) -> Tensor:
        return from_file(self.path)


@dataclass
class SensorConfig:
    """Sensors of an experiment: layout, noise level (× per-channel std), every k-th frame."""

    layout: Layout = field(default_factory=RegularLayout)
    noise_level: float = 0.1
    every: int = 1

    def validate(self, where: str) -> None:
        non_negative(where, noise_level=self.noise_level)
        positive(where, every=self.every)


def read_sensors(
    fields: Tensor, points: Tensor, axes: list[Tensor], periodic: tuple[bool, bool]
) -> Tensor:
    """Bilinear readings of every channel of ``fields`` ``(…, C, H, W)`` at ``points``
    ``(S, 2)``: ``(…, S, C)`` (exact on grid nodes)."""
    c, h, w = fields.shape[-3:]
    op = BilinearGrid(points, (c, h, w), (axes[0], axes[1]), periodic)
    y = op(fields.reshape(*fields.shape[:-3], c * h * w))
    return y.reshape(*fields.shape[:-3], op.n_sensors, c)


def same_sensors(points: Tensor, trained: Tensor) -> bool:
    """Whether ``points`` ``(S, k)`` are the sensors ``trained`` ``(S', k)`` in the same order
    (to float tolerance): what a reader trained on a fixed sensor vector (a fixed-order
    encoder, a VAE's observation encoder) needs. Per-frame points ``(T, S, k)`` never are."""
    return points.shape == trained.shape and torch.allclose(points.double(), trained.double())
