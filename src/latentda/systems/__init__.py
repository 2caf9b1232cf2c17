"""Full-order ("truth") models, batched over a leading member axis.

The sphere (which needs torch-harmonics) is imported on first use, so the
Lorenz-96 and 2-D paths do not pay for it.
"""

from typing import Any

from latentda.systems.base import FieldSystem, System
from latentda.systems.kolmogorov import Kolmogorov
from latentda.systems.linear import LinearSystem, kalman_filter, rts_smoother
from latentda.systems.lorenz96 import Lorenz96
from latentda.systems.registry import FIELD_SYSTEMS, SIZES, field_system, system_from_config
from latentda.systems.tsunami import Tsunami

__all__ = [
    "FIELD_SYSTEMS",
    "SIZES",
    "FieldSystem",
    "Kolmogorov",
    "LinearSystem",
    "Lorenz96",
    "Sphere",
    "System",
    "Tsunami",
    "field_system",
    "kalman_filter",
    "rts_smoother",
    "system_from_config",
]


def __getattr__(name: str) -> Any:
    if name == "Sphere":
        from latentda.systems.sphere import Sphere

        return Sphere
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
