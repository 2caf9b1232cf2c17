"""Ensemble score filter (EnSF; Bao, Zhang & Zhang 2024): a training-free diffusion sampler of
the analysis, with the prior score taken from the forecast ensemble and the likelihood score
from the observation operator by autograd. Memory and time are linear in the state size.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import torch
from torch import Tensor

from latentda.errors import ConfigError
from latentda.filters.ensemble import inflate
from latentda.observations.observer import Observer, present_mask
from latentda.observations.operators import Identity


@dataclass(frozen=True)
class LinearSchedule:
    """Forward kernel ``z_τ | z_0 ~ N(α(τ) z_0, β²(τ) I)`` on pseudo-time ``τ ∈ [0, 1]``.

    ``α(τ) = 1 − (1 − ε_α) τ``, ``β²(τ) = ε_β + (1 − ε_β) τ``; the forward SDE
    ``dz = b(τ) z dτ + g(τ) dW`` has drift ``b = d log α/dτ = −(1 − ε_α)/α`` and diffusion
    ``g² = dβ²/dτ − 2 b β² = (1 − ε_β) − 2 b β²``.
    """

    eps_alpha: float = 0.05
    eps_beta: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.eps_alpha < 1.0:
            raise ConfigError(f"eps_alpha must lie in [0, 1), got {self.eps_alpha}")
        if not 0.0 <= self.eps_beta < 1.0:
            raise ConfigError(f"eps_beta must lie in [0, 1), got {self.eps_beta}")

    def alpha(self, tau: float) -> float:
        return 1.0 - (1.0 - self.eps_alpha) * tau

    def beta2(self, tau: float) -> float:
        return self.eps_beta + (1.0 - self.eps_beta) * tau

    def drift(self, tau: float) -> float:
        return -(1.0 - self.eps_alpha) / self.alpha(tau)

    def diffusion2(self, tau: float) -> float:
        return (1.0 - self.eps_beta) - 2.0 * self.drift(tau) * self.beta2(tau)


#: A prior score bound to one forecast: ``(z, alpha, beta2, out) -> score``.
BoundScore = Callable[[Tensor, float, float, "Tensor | None"], Tensor]


class PriorScore(ABC):
    """Strategy for the prior score ``∇ log p_τ(z)`` from the scaled forecast ensemble."""

    @abstractmethod
    def __call__(
        self, z: Tensor, prior: Tensor, alpha: float, beta2: float, out: Tensor | None = None
    ) -> Tensor:
        """Score ``(N, d)`` at samples ``z`` ``(N, d)`` given forecast ``prior`` ``(N, d)``,
        written into ``out`` when given (the sampler reuses one buffer for all steps)."""

    def bind(self, prior: Tensor) -> BoundScore:
        """The score for a fixed forecast ``prior`` ``(N, d)``, called once per pseudo-time
        step as ``bound(z, alpha, beta2, out)``; strategies with per-forecast work (a
        factorisation) override it to do that work once per analysis."""

        def bound(z: Tensor, alpha: float, beta2: float, out: Tensor | None = None) -> Tensor:
            return self(z, prior, alpha, beta2, out=out)

        return bound


class MemberPriorScore(PriorScore):
    """Per-member score ``S_j = −(z_j − α x̂_j)/β²``: sample ``j`` diffuses back to member ``j``
    (what the public EnSF codes do)."""

    def __call__(
        self, z: Tensor, prior: Tensor, alpha: float, beta2: float, out: Tensor | None = None
    ) -> Tensor:
        return torch.mul(prior, alpha, out=out).sub_(z).div_(beta2)


class MixturePriorScore(PriorScore):
    """Score of the Gaussian mixture ``(1/N) Σ_k N(α x̂_k, β² I)``:
    ``S_j = Σ_k w_jk (−(z_j − α x̂_k)/β²)`` with ``w_j = softmax_k(−‖z_j − α x̂_k‖²/(2β²))``.

    Distances are formed from inner products, so memory stays ``O(N d + N²)``.
    """

    def __call__(
        self, z: Tensor, prior: Tensor, alpha: float, beta2: float, out: Tensor | None = None
    ) -> Tensor:
        ap = alpha * prior
        sq = (z * z).sum(1, keepdim=True) - 2.0 * z @ ap.T + (ap * ap).sum(1)[None, :]
        w = torch.softmax(-sq / (2.0 * beta2), dim=1)  # (N, N)
        return torch.mm(w, ap, out=out).sub_(z).div_(beta2)


class GaussianPriorScore(PriorScore):
    """Score of the diffused Gaussian fit of the forecast, ``p_τ = N(α m, α² P + β² I)``:
    ``S_j = −(α² P + β² I)⁻¹ (z_j − α m)``, with ``m`` the ensemble mean and ``P = AᵀA`` its
    covariance (``A = (x̂ − m)/√(N − 1)``, ``(N, d)``).

    The inverse goes through the ``N × N`` Gram matrix (Woodbury): with
    ``A Aᵀ = U diag(λ) Uᵀ``, ``(α² P + β² I)⁻¹ v = (v − α² Aᵀ U diag(1/(β² + α² λ)) Uᵀ A v)/β²``,
    so a call costs ``O(N² d + N³)`` and memory stays ``O(N d + N²)``. The ``N × N`` part runs
    in float64 with ``λ`` clamped at 0: ``A Aᵀ`` always has the null vector ``1`` (anomalies
    sum to zero), which float32 rounding can make slightly negative. A non-finite forecast
    gives a NaN score, left to the filter's divergence check.

    Unlike the per-member and mixture scores it carries the forecast's spread and
    correlations: a narrow forecast holds the analysis near its mean (a gain like the Kalman
    ``P/(P + R)``), and readings of observed components move the unobserved components
    correlated with them. Needs ``N ≥ 2``.
    """

    def __call__(
        self, z: Tensor, prior: Tensor, alpha: float, beta2: float, out: Tensor | None = None
    ) -> Tensor:
        return self.bind(prior)(z, alpha, beta2, out)

    def bind(self, prior: Tensor) -> BoundScore:
        """Mean, anomalies and the Gram matrix's eigendecomposition once per forecast."""
        n = prior.shape[0]
        if n < 2:
            raise ConfigError(f"the Gaussian prior score needs >= 2 members, got {n}")
        mean = prior.mean(0)
        anomalies = (prior - mean) / math.sqrt(n - 1)  # (N, d)
        gram = (anomalies @ anomalies.T).double()
        finite = bool(torch.isfinite(gram).all())
        lam, u = torch.linalg.eigh(gram) if finite else (None, None)

        def bound(z: Tensor, alpha: float, beta2: float, out: Tensor | None = None) -> Tensor:
            if not finite:
                return torch.full_like(z, float("nan")) if out is None else out.fill_(float("nan"))
            diff = z - alpha * mean  # (N_z, d)
            weights = 1.0 / (beta2 + alpha * alpha * lam.clamp_min(0.0))
            # diff Aᵀ U diag(w) Uᵀ: the coefficients of diff's component in the anomalies' span.
            coeff = (((diff @ anomalies.T).double() @ u) * weights) @ u.T
            diff.sub_((alpha * alpha) * (coeff.to(diff.dtype) @ anomalies))
            return torch.div(diff, -beta2, out=out)

        return bound


#: The prior-score strategies by their configuration names.
PRIOR_SCORES: dict[str, type[PriorScore]] = {
    "member": MemberPriorScore,
    "mixture": MixturePriorScore,
    "gaussian": GaussianPriorScore,
}

#: Names accepted by :func:`make_prior_score` (the configuration's ``prior_score`` key).
PriorScoreName = Literal["member", "mixture", "gaussian"]


def make_prior_score(name: PriorScoreName) -> PriorScore:
    """The :class:`PriorScore` strategy configured as ``name``.

    Parameters
    ----------
    name
        A key of :data:`PRIOR_SCORES`.

    Raises
    ------
    ConfigError
        For any other name, listing the valid ones.
    """
    try:
        return PRIOR_SCORES[name]()
    except KeyError:
        raise ConfigError(
            f"unknown prior_score {name!r}; choose one of {', '.join(PRIOR_SCORES)}"
        ) from None


#: Largest tolerated :meth:`EnSF.growth`: the last explicit step overshoots slightly
#: (1.02 at ``c = √K`` for unit precision), unstable scales grow perturbations by orders of
#: magnitude.
MAX_GROWTH = 2.0


@dataclass(frozen=True)
class EnSF:
    """Ensemble score filter analysis.

    In scaled coordinates ``z = x / scale``, draw ``z ~ N(0, I)`` per member and integrate the
    reverse SDE with ``steps`` Euler–Maruyama steps on ``τ_n = 1 − n/K`` (the score is never
    evaluated at ``τ = 0``):

    ``z ← z − Δτ [b(τ) z − g²(τ) (S_prior + h(τ) S_lik)] + √Δτ g(τ) ξ``,

    with ``S_lik = ∇_z log p(y | x = scale·z) = scale·J_H(x)ᵀ (y − H(x))/σ²`` over the present
    readings (``J_Hᵀ`` by the operator's adjoint, or autograd for a nonlinear ``H``) and
    damping ``h(τ) = 1 − τ``.

    Parameters
    ----------
    steps
        Number of pseudo-time steps ``K``.
    schedule
        The noise schedule (``ε_α``, ``ε_β``).
    prior_score
        :class:`MemberPriorScore`, :class:`MixturePriorScore` or :class:`GaussianPriorScore`.
    scale
        Constant ``c`` dividing the states before diffusion.
    score_clip
        If set, each component of the total score is clipped to ``[−clip, clip]``.
    inflation
        Multiplicative inflation of the analysis anomalies (1 = none).
    """

    steps: int = 100
    schedule: LinearSchedule = field(default_factory=LinearSchedule)
    prior_score: PriorScore = field(default_factory=MemberPriorScore)
    scale: float = 1.0
    score_clip: float | None = None
    inflation: float = 1.0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"EnSF steps must be >= 1, got {self.steps}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ConfigError(f"EnSF scale must be finite and > 0, got {self.scale}")
        if self.score_clip is not None and not self.score_clip > 0:
            raise ConfigError(f"EnSF score_clip must be > 0, got {self.score_clip}")

    def growth(self, precision: float) -> float:
        """How much the explicit steps can amplify a perturbation of ``z``, for a Gaussian
        likelihood of precision ``precision`` (``1/σ²`` along an observed direction, in the
        states' units) and the per-member prior score.

        One step maps ``z ↦ a_n z + …`` with
        ``a_n = 1 − Δτ b − Δτ g² (1/β² + h c² · precision)`` (``c`` = :attr:`scale`); the
        result is ``max_m Π_{n ≥ m} |a_n|``, the worst growth from any step to the end. Far
        above 1 the analysis explodes, to Inf or to huge finite values: the step ``Δτ`` must
        resolve the likelihood's curvature, roughly ``c² · precision ≲ K``.
        """
        sched, dtau = self.schedule, 1.0 / self.steps
        worst = running = 1.0
        for n in reversed(range(self.steps)):
            tau = 1.0 - n * dtau
            curvature = 1.0 / sched.beta2(tau) + (1.0 - tau) * self.scale**2 * precision
            running *= abs(1.0 - dtau * (sched.drift(tau) + sched.diffusion2(tau) * curvature))
            worst = max(worst, running)
        return worst

    def check_growth(self, precision: float, context: str) -> None:
        """Refuse settings whose explicit steps cannot resolve a likelihood of precision
        ``precision`` (see :meth:`growth`): raise :class:`ConfigError` if the growth exceeds
        :data:`MAX_GROWTH`, rather than return exploded (possibly still finite) analyses.
        ``context`` names the likelihood in the message."""
        growth = self.growth(precision)
        if growth > MAX_GROWTH:
            raise ConfigError(
                f"EnSF scale {self.scale:g} with {self.steps} steps amplifies perturbations by "
                f"{growth:.3g} on {context}; use a scale below about √steps = "
                f"{self.steps**0.5:.3g} times the noise std {precision**-0.5:.3g}, or more steps"
            )

    def likelihood_score(self, z: Tensor, y: Tensor, observer: Observer) -> Tensor:
        """``∇_z log p(y | scale·z) = scale · J_H(x)ᵀ (y − H(x))/σ²`` ``(N, d)``, NaN = missing."""
        y0, weight = observer.precision(y, z.dtype, z.device)
        return self._likelihood_score(z, observer, y0, weight)

    def _likelihood_score(
        self, z: Tensor, observer: Observer, y0: Tensor, w: Tensor, x: Tensor | None = None
    ) -> Tensor:
        x = torch.mul(z, self.scale, out=x)
        return observer.log_likelihood_grad(x, y0, w).mul_(self.scale)

    def analysis(
        self, ensemble: Tensor, y: Tensor, observer: Observer, gen: torch.Generator
    ) -> Tensor:
        """EnSF analysis of ``ensemble`` ``(N, d)`` given ``y`` ``(m,)`` (NaN = missing).

        With the per-member prior score, no clipping and ``H = I`` (the latent filters'
        whitened observation) both scores are affine in ``z`` with a diagonal slope, and each
        step is run as the one affine map it is (:meth:`_affine_steps`, 5 tensor operations
        instead of 13; the same draws, equal up to float rounding).
        """
        if not bool(present_mask(y).any()):
            return ensemble
        prior = ensemble / self.scale
        z = torch.randn(prior.shape, generator=gen, dtype=prior.dtype).to(prior.device)
        y0, weight = observer.precision(y, prior.dtype, prior.device)
        affine = (
            isinstance(self.prior_score, MemberPriorScore)
            and isinstance(observer.operator, Identity)
            and self.score_clip is None
        )
        if affine:
            self._affine_steps(z, prior, y0, weight, gen)
        else:
            self._steps(z, prior, observer, y0, weight, gen)
        return inflate(self.scale * z, self.inflation)

    def _coefficients(self, n: int) -> tuple[float, float, float, float, float]:
        """``(α, β², b, g², h)`` of step ``n`` at ``τ_n = 1 − n/K`` (``h = 1 − τ``)."""
        sched, tau = self.schedule, 1.0 - n / self.steps
        return (
            sched.alpha(tau),
            sched.beta2(tau),
            sched.drift(tau),
            sched.diffusion2(tau),
            1.0 - tau,
        )

    def _steps(
        self,
        z: Tensor,
        prior: Tensor,
        observer: Observer,
        y0: Tensor,
        weight: Tensor,
        gen: torch.Generator,
    ) -> None:
        """The reverse SDE on ``z`` ``(N, d)`` in place, any prior score and operator."""
        # Buffers reused by every step: large fresh allocations cost page faults at d ~ 10^6.
        score, x, noise = torch.empty_like(z), torch.empty_like(z), torch.empty_like(z)
        dtau = 1.0 / self.steps
        prior_score = self.prior_score.bind(prior)
        for n in range(self.steps):
            alpha, beta2, b, g2, h = self._coefficients(n)
            prior_score(z, alpha, beta2, score)
            score.add_(self._likelihood_score(z, observer, y0, weight, x), alpha=h)
            if self.score_clip is not None:
                score.clamp_(-self.score_clip, self.score_clip)
            _draw(noise, gen)
            # z ← z − Δτ (b z − g² S) + √(Δτ g²) ξ, in place to keep memory at a few (N, d)
            z.mul_(1.0 - dtau * b).add_(score, alpha=dtau * g2).add_(
                noise, alpha=math.sqrt(dtau * g2)
            )

    def _affine_steps(
        self, z: Tensor, prior: Tensor, y0: Tensor, weight: Tensor, gen: torch.Generator
    ) -> None:
        """The reverse SDE on ``z`` ``(N, d)`` in place for the per-member prior score and
        ``H = I`` with weights ``w`` ``(d,)`` (0 where missing).

        With ``S_prior = (α x̂ − z)/β²`` and ``S_lik = c w ⊙ (y₀ − c z)``, one step of
        :meth:`_steps` is ``z ← a ⊙ z + (Δτ g² α/β²) x̂ + (Δτ g² h c) w ⊙ y₀ + √(Δτ g²) ξ``
        with ``a = 1 − Δτ b − Δτ g²/β² − Δτ g² h c² w``; the slopes of all ``K`` steps are
        formed at once ``(K, d)``.
        """
        flat, curv, prior_gain, data_gain, noise_gain = self._affine_coefficients
        slopes = (flat[:, None] - curv[:, None] * weight.cpu().double()[None, :]).to(z)
        wy = weight * y0
        noise = torch.empty_like(z)
        for n in range(self.steps):
            _draw(noise, gen)
            z.mul_(slopes[n]).add_(prior, alpha=prior_gain[n]).add_(wy, alpha=data_gain[n])
            z.add_(noise, alpha=noise_gain[n])

    @cached_property
    def _affine_coefficients(
        self,
    ) -> tuple[Tensor, Tensor, list[float], list[float], list[float]]:
        """Per step of :meth:`_affine_steps`: the slope ``a = flat − curv · w`` as ``flat``
        and ``curv`` ``(K,)`` (float64), and the gains ``Δτ g² α/β²`` of ``x̂``,
        ``Δτ g² h c`` of ``w ⊙ y₀`` and ``√(Δτ g²)`` of ``ξ`` (computed once per filter)."""
        dtau, c = 1.0 / self.steps, self.scale
        coeffs = [self._coefficients(n) for n in range(self.steps)]
        flat = [1.0 - dtau * (b + g2 / beta2) for _, beta2, b, g2, _ in coeffs]
        curv = [dtau * g2 * h * c * c for *_, g2, h in coeffs]
        return (
            torch.tensor(flat, dtype=torch.float64),
            torch.tensor(curv, dtype=torch.float64),
            [dtau * g2 * alpha / beta2 for alpha, beta2, _, g2, _ in coeffs],
            [dtau * g2 * h * c for *_, g2, h in coeffs],
            [math.sqrt(dtau * g2) for *_, g2, _ in coeffs],
        )


def _draw(noise: Tensor, gen: torch.Generator) -> None:
    """Fill ``noise`` with standard normal draws from ``gen`` (a CPU generator)."""
    if noise.device.type == "cpu":
        noise.normal_(generator=gen)
    else:
        noise.copy_(torch.randn(noise.shape, generator=gen, dtype=noise.dtype))
