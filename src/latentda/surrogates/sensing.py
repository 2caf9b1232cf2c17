"""Sensors of a dataset, for the trainers that learn from readings (DESIGN 4, 5.2, 5.3).

:class:`Geometry` places a :class:`~latentda.observations.sensors.SensorConfig` layout on a
dataset's grid and reads normalised fields there; :func:`noisy` adds the observation noise
(and optionally missing readings) that the encoder and VAE trainers draw afresh in every epoch,
so training sees the same noise model as the filters at test time.
"""

from __future__ import annotations

import torch
import xarray as xr
from torch import Tensor

from latentda.data.splits import dataset_axes, dataset_periodic, unit_coords
from latentda.observations.sensors import SensorConfig, read_sensors


class Geometry:
    """Grid axes, periodicity and the sensor points of a dataset and layout.

    Parameters
    ----------
    ds
        Store written by ``latentda simulate``; gives the grid axes and the system (for its
        periodic axes).
    sensors
        Sensor settings; only the layout is used here.
    seed
        Seed of the generator a random layout draws its points from.

    Attributes
    ----------
    axes
        The two grid axes ``[(H,), (W,)]``, float64, in the system's units.
    periodic
        Whether each grid axis is periodic.
    points
        Sensor coordinates ``(S, 2)`` in the grid's units.
    unit
        The same points mapped to ``[-1, 1]²``, ``(S, 2)`` float32 (location-aware encoders).
    """

    def __init__(self, ds: xr.Dataset, sensors: SensorConfig, seed: int) -> None:
        self.axes = dataset_axes(ds)
        self.periodic = dataset_periodic(ds)
        self.points = sensors.layout.points(
            self.axes, self.periodic, torch.Generator().manual_seed(seed)
        )
        self.unit = unit_coords(self.points, self.axes)

    def read(self, fields: Tensor, points: Tensor | None = None) -> Tensor:
        """Bilinear readings of every channel at the sensors.

        Parameters
        ----------
        fields
            Fields ``(…, C, H, W)`` on this grid.
        points
            Sensor coordinates ``(S', 2)`` in grid units instead of :attr:`points` (e.g. a
            fresh random layout); ``None`` reads at :attr:`points`.

        Returns
        -------
        Tensor
            Readings ``(…, S, C)``, float32.
        """
        pts = self.points if points is None else points
        return read_sensors(fields, pts, self.axes, self.periodic).float()


def noisy(readings: Tensor, level: float, drop_rate: float, gen: torch.Generator) -> Tensor:
    """Readings plus Gaussian noise, a fraction of them set missing.

    Parameters
    ----------
    readings
        Clean normalised readings ``(…, K)``, e.g. ``(…, S, C)`` or flattened ``(…, S·C)``.
        A missing reading blanks a whole vector along the last axis (one sensor's ``C``
        channels in the ``(…, S, C)`` layout).
    level
        Noise standard deviation in normalised units, so ``σ_c = level·std_c`` in physical
        units (DESIGN 4).
    drop_rate
        Probability that a reading is missing (NaN); ``0`` draws no mask, so the generator
        then advances by the noise draw alone.
    gen
        Generator of the noise and the missing-reading mask.

    Returns
    -------
    Tensor
        Noisy readings, same shape as ``readings``.
    """
    out = readings + level * torch.randn(readings.shape, generator=gen)
    if drop_rate > 0:
        out = out.masked_fill(
            torch.rand(readings.shape[:-1], generator=gen)[..., None] < drop_rate, float("nan")
        )
    return out
