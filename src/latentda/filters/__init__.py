"""Analysis schemes. Every filter maps a forecast ensemble ``(N, d)`` and an observation
``(m,)`` (NaN = missing) to an analysis ensemble ``(N, d)``."""

from latentda.filters.base import Filter
from latentda.filters.enkf import StochasticEnKF
from latentda.filters.ensf import (
    PRIOR_SCORES,
    EnSF,
    GaussianPriorScore,
    LinearSchedule,
    MemberPriorScore,
    MixturePriorScore,
    PriorScore,
    make_prior_score,
)
from latentda.filters.envar import FourDEnVar, WindowSmoother, gauss_newton_step
from latentda.filters.etkf import ETKF, etkf_transform
from latentda.filters.letkf import LETKF
from latentda.filters.localization import (
    EuclideanDistance,
    GaspariCohn,
    PeriodicDistance,
    gaspari_cohn,
)

__all__ = [
    "PRIOR_SCORES",
    "ETKF",
    "LETKF",
    "EnSF",
    "EuclideanDistance",
    "Filter",
    "FourDEnVar",
    "GaspariCohn",
    "GaussianPriorScore",
    "LinearSchedule",
    "MemberPriorScore",
    "MixturePriorScore",
    "PeriodicDistance",
    "PriorScore",
    "StochasticEnKF",
    "WindowSmoother",
    "etkf_transform",
    "gaspari_cohn",
    "gauss_newton_step",
    "make_prior_score",
]
