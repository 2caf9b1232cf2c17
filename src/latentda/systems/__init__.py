"""Full-order ("truth") models, batched over a leading member axis."""

from latentda.systems.base import System
from latentda.systems.linear import LinearSystem, kalman_filter, rts_smoother
from latentda.systems.lorenz96 import Lorenz96

__all__ = ["LinearSystem", "Lorenz96", "System", "kalman_filter", "rts_smoother"]
