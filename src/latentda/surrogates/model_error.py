"""The LDNet's own error as part of the predictive distribution (DESIGN 5.1, 6.3, 6.5, 7).

An LDNet rolled out with the *true* parameters still misses the truth: its reconstruction
and rollout error (relative RMSE ≈ 0.1, growing with the frame) dominates the field error of
the latent methods, whose ensembles carry latent uncertainty only. Its size is estimated per
frame ``t`` and channel ``c`` on the validation split
(:func:`~latentda.surrogates.train_ldnet.model_error_std`), in normalised units,

``σ_m(t, c) = sqrt( mean_{i, ξ} (R(s_t(u_i), ξ)_c − x̃_{i,t,c}(ξ))² )``,

and stored with the LDNet's checkpoint. This module holds what the filters and the twin
experiment do with it:

- :func:`model_error_at`: ``σ_m`` at a real time (linear between frames, clamped), which
  LEVDA adds to its observation-error variance, ``R_c(τ) = (σ_obs,c/s_c)² + σ_m(τ, c)²``;
- :func:`centred_noise`, :func:`perturb_members` and :func:`predictive_members`: members of
  the predictive distribution for scoring, the decoded member plus a centred Gaussian draw
  of the surrogate's error, so the ensemble mean is unchanged and the spread grows;
- :func:`frame_generator`: the seeded stream of those draws, one generator per frame.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from latentda.errors import DataError

#: Entropy word of the model-error stream ("mdlerr"), so that its generators are unrelated to
#: the twin experiment's linear stream seeds (:func:`latentda.experiments.twin.stream`).
_STREAM_TAG = 0x6D646C657272


def model_error_at(std: Tensor, time: float) -> Tensor:
    """``σ_m`` at a real time ``τ`` (frame units): linear between the frames, the first or
    last frame's value outside ``[0, T − 1]``.

    Parameters
    ----------
    std
        ``σ_m`` ``(T, C)`` per frame and channel.
    time
        ``τ``; an integer ``τ = k`` in range returns ``std[k]`` exactly.

    Returns
    -------
    Tensor
        ``(C,)``, ``(1 − f) σ_m(k) + f σ_m(k + 1)`` with ``k = ⌊τ⌋``, ``f = τ − k``.
    """
    if std.ndim != 2 or std.shape[0] < 1:
        raise DataError(f"model error std has shape {tuple(std.shape)}, expected (T >= 1, C)")
    last = std.shape[0] - 1
    tau = float(time)
    if tau <= 0.0:
        return std[0]
    if tau >= last:
        return std[last]
    k = math.floor(tau)
    f = tau - k
    # An exact frame returns its own value, not a 0-weighted blend with the next one.
    return std[k] if f == 0.0 else (1.0 - f) * std[k] + f * std[k + 1]


def frame_generator(key: Sequence[int], frame: int) -> torch.Generator:
    """The generator of the model-error draws of one frame: seeded from ``key`` (e.g. the
    case's seed and trajectory index) and ``frame`` through :class:`numpy.random.SeedSequence`,
    so each frame's draw is reproducible whatever order or how often frames are asked for,
    and independent of every other random stream."""
    entropy = [_STREAM_TAG, *(int(k) for k in key), int(frame)]
    if any(e < 0 for e in entropy):
        raise DataError(f"model-error stream keys must be >= 0, got {list(key)}, {frame}")
    state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) >> 1)  # manual_seed wants < 2⁶³


def centred_noise(n: int, shape: Sequence[int], gen: torch.Generator) -> Tensor:
    """``n`` centred standard-normal draws ``(n, *shape)`` float64:
    ``δ_j = √(N/(N−1)) (ε_j − ε̄)``, ``ε_j ~ N(0, I)``.

    Centring makes ``Σ_j δ_j = 0`` (to round-off), so adding ``δ`` to an ensemble leaves its
    mean unchanged; the factor restores the variance the centring takes away: each
    ``δ_j`` has variance 1 (``Var(ε_j − ε̄) = (N−1)/N``), and so has the ensemble's
    population variance ``(1/N) Σ_j δ_j²`` in expectation (its unbiased variance is
    ``N/(N−1)``).
    """
    if n < 2:
        raise DataError(f"centred noise needs n >= 2 members, got {n}")
    eps = torch.randn((n, *shape), generator=gen, dtype=torch.float64)
    return (eps - eps.mean(0)) * math.sqrt(n / (n - 1))


def perturb_members(members: Tensor, std: Tensor, gen: torch.Generator) -> Tensor:
    """Members plus centred Gaussian noise of std ``std`` per channel.

    Parameters
    ----------
    members
        ``(N, C, …)`` (e.g. ``(N, C, H, W)`` fields), any float dtype.
    std
        ``(C,)``, in the units of ``members``.
    gen
        Source of the noise (:func:`centred_noise` of shape ``members.shape[1:]``).

    Returns
    -------
    Tensor
        float64 ``(N, C, …)``: ``x_j + std_c δ_j``; the member mean equals that of
        ``members`` to round-off (≈ 10⁻¹⁶ relative).
    """
    if members.ndim < 2 or std.shape != (members.shape[1],):
        raise DataError(
            f"members {tuple(members.shape)} and std {tuple(std.shape)}: expected (N, C, …) "
            "and (C,)"
        )
    noise = centred_noise(members.shape[0], members.shape[1:], gen)
    scale = std.double().reshape(-1, *([1] * (members.ndim - 2)))
    return members.double() + noise * scale


def predictive_members(
    decode: Callable[[int], Tensor],
    std: Tensor,
    channel_std: Tensor,
    key: Sequence[int],
    timings: dict[str, float] | None = None,
) -> Callable[[int], Tensor]:
    """``members(t)`` of the predictive distribution: the decoded members plus the
    surrogate's error, ``x_j(t) + s_c σ_m(t, c) δ_j(t)``, with ``δ(t)`` from
    :func:`frame_generator` ``(key, t)`` (the same fields at every call).

    Parameters
    ----------
    decode
        ``decode(t)`` -> decoded members ``(N, C, H, W)`` at frame ``t``, physical units.
    std
        ``σ_m`` ``(T, C)`` in normalised units (:func:`model_error_at` at frame ``t``).
    channel_std
        ``s_c`` ``(C,)``, the normaliser's channel std (normalised -> physical units).
    key
        Seeds the draws (non-negative integers, e.g. ``(case.seed, trajectory_index)``).
    timings
        If given, the time spent perturbing is added to its ``reconstruction_s``: it is
        part of producing the members' fields, as the decoding is.
    """

    def members(t: int) -> Tensor:
        fields = decode(t)
        t0 = time.perf_counter()
        sigma = model_error_at(std, t).double() * channel_std.double()
        out = perturb_members(fields, sigma, frame_generator(key, t))
        if timings is not None:
            timings["reconstruction_s"] = timings.get("reconstruction_s", 0.0) + (
                time.perf_counter() - t0
            )
        return out

    return members
