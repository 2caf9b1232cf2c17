"""Ensemble-variational smoothing in ensemble space (DESIGN 6.5): the Gauss–Newton /
ensemble-transform core and the full-state 4DEnVar smoother built on it.

Notation. A window starts at time ``t_0`` with a background ensemble ``E`` ``(N, d)`` of the
control ``κ_0`` (the full state here; ``[s_0, u]`` for LEVDA), mean ``κ̄``, anomalies
``A = E − κ̄`` and scaled anomalies ``X = Aᵀ/√(N−1)`` ``(d, N)``. The control is ``w ∈ R^N``,
``κ(w) = κ̄ + X w``, and the cost over the window's observation times ``t_1..t_K`` is

``J(w) = ½‖w‖² + ½ Σ_k ‖y_k − H_k(M_{0→k}(κ(w)))‖²_{R_k⁻¹}``.

With the standardised innovations ``δ_k = R_k^{-1/2}(y_k − H_k M_{0→k}(κ(w)))`` ``(m_k,)`` and
the standardised window Jacobians ``Ĝ_k = R_k^{-1/2} ∂(H_k M_{0→k} κ)/∂w`` ``(m_k, N)``, one
Gauss–Newton step is ``Hess = I + Σ_k Ĝ_kᵀĜ_k``, ``Δw = Hess⁻¹(Σ_k Ĝ_kᵀδ_k − w)``, and the
posterior ensemble is the ensemble transform
``κ_a^(i) = κ̄ + X(w* + √(N−1) [Hess^{-1/2}]_i)``. :func:`gauss_newton_step` is that maths and
nothing else, so any method that can supply ``δ_k`` and ``Ĝ_k`` reuses it: 4DEnVar estimates
``Ĝ_k`` from the ensemble's own forecast perturbations (below); LEVDA computes it by
autograd through the latent rollout and the reconstruction net, in the ``N`` directions of
``X``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from latentda.errors import ConfigError, DataError, FilterDivergence
from latentda.filters.ensemble import inflate, mean_anomalies, rotate
from latentda.observations.observer import Observer, present_mask

#: Maps window-start controls ``(B, d)`` to the states ``(B, d)`` at each of the window's
#: new observation times (a list, one entry per time, in time order).
Propagator = Callable[[Tensor], list[Tensor]]


@dataclass(frozen=True)
class GaussNewtonStep:
    """One Gauss–Newton step in ensemble space and the posterior transform at its iterate.

    Attributes
    ----------
    w
        Updated control ``w + Δw`` ``(N,)``.
    step
        ``Δw = Hess⁻¹(Σ_k Ĝ_kᵀδ_k − w)`` ``(N,)``.
    cost
        ``J`` at the iterate the step started from, ``½‖w‖² + ½Σ_k‖δ_k‖²``.
    hessian
        Gauss–Newton Hessian ``I + Σ_k Ĝ_kᵀĜ_k`` ``(N, N)``.
    transform
        ``Hess^{-1/2}`` ``(N, N)``, symmetric: the ensemble transform (times ``√(N−1)`` in the
        scaled-anomaly convention).
    transform_inv
        ``Hess^{1/2}`` ``(N, N)``, which de-conditions anomalies drawn with ``transform``.
    """

    w: Tensor
    step: Tensor
    cost: Tensor
    hessian: Tensor
    transform: Tensor
    transform_inv: Tensor


def gauss_newton_step(
    w: Tensor, innovations: Sequence[Tensor], jacobians: Sequence[Tensor]
) -> GaussNewtonStep:
    """Gauss–Newton step of ``J(w) = ½‖w‖² + ½Σ_k‖δ_k(w)‖²`` linearised as
    ``δ_k(w + Δw) ≈ δ_k(w) − Ĝ_k Δw``, and the ensemble transform at ``w``.

    ``Hess = I + Σ_k Ĝ_kᵀĜ_k = V diag(λ) Vᵀ`` (``λ ≥ 1``, so the solve is always well posed),
    ``Δw = −Hess⁻¹ ∇J`` with ``∇J = w − Σ_k Ĝ_kᵀδ_k``, ``Hess^{∓1/2} = V diag(λ^{∓1/2}) Vᵀ``.
    The time blocks ``k`` only sum, so they may be passed stacked as one block; missing
    readings are simply rows left out.

    Parameters
    ----------
    w
        Current control ``(N,)``.
    innovations
        Standardised innovations ``δ_k = R_k^{-1/2}(y_k − H_k M_{0→k}(κ(w)))``, each ``(m_k,)``.
    jacobians
        Standardised window Jacobians ``Ĝ_k = R_k^{-1/2} ∂(H_k M_{0→k} κ)/∂w``, each
        ``(m_k, N)``.
    """
    if len(innovations) != len(jacobians):
        raise ValueError(f"{len(innovations)} innovation blocks but {len(jacobians)} Jacobians")
    n = w.shape[0]
    eye = torch.eye(n, dtype=w.dtype, device=w.device)
    gtg = torch.zeros_like(eye)
    gtd = torch.zeros_like(w)
    misfit = torch.zeros((), dtype=w.dtype, device=w.device)
    for d, G in zip(innovations, jacobians, strict=True):
        if G.shape != (d.shape[0], n):
            raise ValueError(f"Jacobian block {tuple(G.shape)} does not match ({d.shape[0]}, {n})")
        gtg = gtg + G.T @ G
        gtd = gtd + G.T @ d
        misfit = misfit + d @ d
    hess = eye + gtg
    lam, V = torch.linalg.eigh(0.5 * (hess + hess.T))  # symmetrise round-off before eigh
    step = V @ ((V.T @ (gtd - w)) / lam)
    return GaussNewtonStep(
        w=w + step,
        step=step,
        cost=0.5 * (w @ w + misfit),
        hessian=hess,
        transform=(V * lam.rsqrt()) @ V.T,
        transform_inv=(V * lam.sqrt()) @ V.T,
    )


def innovation_inflation(delta: Tensor, G: Tensor) -> float:
    """Multiplicative inflation ``λ ≥ 1`` of the background anomalies from one window's
    standardised innovations ``δ = R^{-1/2}(y − H M(κ̄))`` ``(m,)`` and background Jacobian
    ``G`` ``(m, N)`` (Li, Kalnay & Miyoshi 2009, in ensemble space).

    A background consistent with its spread has ``E‖δ‖² = m + tr(G Gᵀ)`` (``G Gᵀ`` is
    ``R^{-1/2} H B Hᵀ R^{-1/2}`` for ``B = X Xᵀ``); scaling ``X`` by ``λ`` scales the second
    term by ``λ²``, so ``λ² = (‖δ‖² − m) / tr(G Gᵀ)``, floored at 1 (only inflate).
    """
    spread = float(G.square().sum())
    excess = float(delta @ delta) - delta.shape[0]
    if spread <= 0.0 or excess <= spread:
        return 1.0
    return math.sqrt(excess / spread)


def member_controls(n: int, scale: float, dtype: torch.dtype = torch.float64) -> Tensor:
    """Candidate starts of a window's minimisation ``(N + 1, N)``: the background mean
    ``w = 0`` and each member ``w = scale · e_i``. With ``κ(w) = κ̄ + X w`` and
    ``X = Aᵀ/√(N−1)``, ``scale = √(N−1)`` puts row ``i`` on member ``i``; anomalies inflated
    by ``λ`` after the members were run need ``scale = √(N−1)/λ`` to land on the run ones."""
    return torch.cat([torch.zeros(1, n, dtype=dtype), scale * torch.eye(n, dtype=dtype)])


def lowest_cost(starts: Tensor, misfits: Tensor) -> int:
    """Row of ``starts`` ``(B, N)`` with the lowest ``J = ½‖w‖² + ½ misfit`` given each
    row's squared standardised misfit ``misfits`` ``(B,)`` (a non-finite one never wins;
    ties keep the earlier row, the mean first)."""
    cost = 0.5 * (starts.double().square().sum(-1) + misfits.double())
    return int(torch.argmin(torch.where(torch.isfinite(cost), cost, torch.inf)))


@dataclass(frozen=True)
class WindowAnalysis:
    """Result of one window.

    Attributes
    ----------
    ensemble
        Analysis ensemble at the **window start** ``(N, d)`` (the smoother estimate), after
        inflation and rotation.
    background
        Background forecast states at each new observation time of the window, ``K`` tensors
        ``(N, d)`` (the first Gauss–Newton iterate, ``w = 0``, ``T = I``).
    w
        Minimiser ``w*`` ``(N,)``.
    hessian
        Gauss–Newton Hessian ``(N, N)`` of the last step.
    step_norms
        ``‖Δw‖`` of each step taken, a member start's jump first where there was one (empty
        when the window has no reading).
    costs
        ``J = ½‖w‖² + ½Σ_k‖δ_k‖²`` at the iterate each Gauss–Newton step started from
        (``δ_k`` from the run's ensemble mean ``ȳ_k``), one per Gauss–Newton step: whether
        the iterations lowered it. (LEVDA's ``costs`` also hold ``J`` at the last iterate.)
    """

    ensemble: Tensor
    background: list[Tensor]
    w: Tensor
    hessian: Tensor
    step_norms: tuple[float, ...]
    costs: tuple[float, ...] = ()

    @property
    def iterations(self) -> int:
        """Number of Gauss–Newton steps taken (a member start's jump is not one). Each
        but the last is followed by an ensemble run, as the jump is."""
        return len(self.costs)


@runtime_checkable
class WindowSmoother(Protocol):
    """A smoother that assimilates ``shift`` new observation times per window of ``window``
    observation times, returning the analysis at the window start (see :func:`window_blocks`).
    """

    def blocks(self, cycles: int) -> list[WindowBlock]:
        """The cycles over observation times ``1..cycles`` (see :func:`window_blocks`)."""
        ...

    def analyse(
        self,
        ensemble: Tensor,
        propagate: Propagator,
        ys: Tensor,
        observer: Observer,
        gen: torch.Generator,
    ) -> WindowAnalysis: ...


@dataclass(frozen=True)
class WindowBlock:
    """One cycle of a window smoother over observation times ``1..C`` (time 0 = the start).

    The control sits at observation time ``start``; the readings of times ``first..end``
    (the ``new`` ones) enter the cost; the ensemble then moves to the next block's ``start``.
    """

    start: int
    first: int
    end: int

    @property
    def new(self) -> range:
        return range(self.first, self.end + 1)


def window_blocks(cycles: int, window: int, shift: int | None = None) -> list[WindowBlock]:
    """The cycles of a smoother with ``window`` observation times per window that slides by
    ``shift`` times (``None``: ``window``, disjoint windows), as in DAPPER's iEnKS (single
    assimilation of each reading).

    Block ``j`` assimilates times ``jS+1 .. e_j = min((j+1)S, C)`` with the control at
    ``max(e_j − L, 0)``: the window ``(start, e_j]`` holds at most ``L`` times (fewer at the
    beginning, where it is truncated at time 0). ``S = L`` gives disjoint windows (classical
    4DEnVar / 4D-Var cycling); ``S = 1`` is DAPPER's iEnKS and Var4D cycling. When ``S`` does
    not divide ``C`` the last, shorter block still starts ``L`` times before its end, inside
    the previous window, whose analysis has already been forecast there.
    """
    shift = window if shift is None else shift
    if not 1 <= shift <= window:
        raise ConfigError(f"shift must lie in [1, window={window}], got {shift}")
    blocks = []
    for first in range(1, cycles + 1, shift):
        end = min(first + shift - 1, cycles)
        blocks.append(WindowBlock(start=max(end - window, 0), first=first, end=end))
    return blocks


def check_window_knobs(
    window: int, shift: int | None, iterations: int, tolerance: float, inflation: float
) -> None:
    """Refuse the knobs a window smoother (:class:`FourDEnVar`,
    :class:`~latentda.filters.levda.LEVDA`) cannot run with, one :class:`ConfigError` each:
    ``window = L ≥ 1``, ``shift = S`` ``None`` or in ``[1, L]``, ``iterations ≥ 1``, and
    finite ``tolerance > 0`` and ``inflation > 0``.
    """
    if window < 1:
        raise ConfigError(f"window must be >= 1, got {window}")
    if shift is not None and not 1 <= shift <= window:
        raise ConfigError(f"shift must lie in [1, window={window}], got {shift}")
    if iterations < 1:
        raise ConfigError(f"iterations must be >= 1, got {iterations}")
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ConfigError(f"tolerance must be finite and > 0, got {tolerance}")
    if not (math.isfinite(inflation) and inflation > 0):
        raise ConfigError(f"inflation must be finite and > 0, got {inflation}")


@dataclass(frozen=True)
class FourDEnVar:
    """Full-state 4DEnVar: iterative ensemble smoother in ensemble space, adjoint-free.

    Each Gauss–Newton iterate runs the ensemble ``κ̄ + X(w + √(N−1) T_i)`` (``T`` the current
    transform, ``I`` at first) through the window, and the window Jacobian is read off its
    observed anomalies: with ``Y_k = H_k M_{0→k}`` of those members ``(N, m_k)`` and mean
    ``ȳ_k``, ``Ĝ_k = R_k^{-1/2} ((Y_k − ȳ_k)/√(N−1))ᵀ T⁻¹`` ("de-conditioned" by ``T⁻¹``) and
    ``δ_k = R_k^{-1/2}(y_k − ȳ_k)``. This is the *transform* variant of the iEnKS (Sakov et
    al. 2012; Bocquet & Sakov 2014; DAPPER's ``iEnKS('Sqrt')`` default): the linearisation is
    averaged over the posterior spread rather than taken at a point (the *bundle* variant),
    no extra run of the mean is needed, and for linear ``H_k M`` it is exact, so one
    Gauss–Newton step reaches ``w*`` and the result is the Kalman smoother's when ``N > d``.
    Steps stop when ``‖Δw‖ < tolerance`` or after ``iterations``; the posterior is
    :func:`gauss_newton_step`'s transform at the last iterate. Multiplicative inflation and
    the optional random rotation post-process the window-start analysis, as DAPPER does, so
    they act on the next window's background.

    Parameters
    ----------
    window
        ``L``: observation times per window.
    shift
        ``S``: new observation times assimilated per cycle (``1 ≤ S ≤ L``; see
        :func:`window_blocks`). ``None`` means ``S = L``.
    iterations
        Maximum number of Gauss–Newton steps per window.
    tolerance
        Stop when ``‖Δw‖`` falls below it.
    inflation
        Multiplicative inflation of the analysis anomalies at the window start.
    rotate
        Random mean-preserving rotation of the analysis members.
    adaptive_inflation
        Inflate the window's background anomalies by :func:`innovation_inflation` of the
        first iterate's innovations before the minimisation (the later iterates run the
        inflated members), so a background whose spread is too small for its innovations
        (a collapsed or biased ensemble) is widened where the data say so.
    member_starts
        Run the background mean through the window with the members (one state more) and,
        if a member fits the window better than the mean does
        (``J = ½‖w‖² + ½‖R^{-1/2}(y − H M(·))‖²``), take it as the first iterate instead of
        the transform's step from ``w = 0``: the next iterate runs the ensemble re-centred
        on it (:func:`member_controls`, :func:`lowest_cost`). Against window costs with
        several minima, as LEVDA's. The mean's own run, not ``ȳ``, is what a member is
        compared with: the average of members' predictions of a localised feature at
        different places is a smeared field that fits better than any one of them.
    """

    window: int = 4
    shift: int | None = None
    iterations: int = 10
    tolerance: float = 1e-4
    inflation: float = 1.0
    rotate: bool = False
    adaptive_inflation: bool = False
    member_starts: bool = False

    def __post_init__(self) -> None:
        check_window_knobs(self.window, self.shift, self.iterations, self.tolerance, self.inflation)

    def blocks(self, cycles: int) -> list[WindowBlock]:
        """The cycles over observation times ``1..cycles`` (see :func:`window_blocks`)."""
        return window_blocks(cycles, self.window, self.shift)

    def analyse(
        self,
        ensemble: Tensor,
        propagate: Propagator,
        ys: Tensor,
        observer: Observer | Sequence[Observer],
        gen: torch.Generator,
    ) -> WindowAnalysis:
        """Assimilate the readings ``ys`` ``(K, m)`` (NaN = missing) of the window's ``K`` new
        observation times into the window-start ensemble ``(N, d)``.

        ``propagate`` maps window-start states ``(B, d)`` to the states at the ``K`` times.
        ``observer`` is one observer for all ``K`` times or one per time (moving sensors),
        each with ``m`` readings. With no present reading the analysis is the background
        itself (no inflation, as for the filters).
        """
        n = ensemble.shape[0]
        if ensemble.ndim != 2 or n < 2:
            raise DataError(f"ensemble must be (N >= 2, d), got {tuple(ensemble.shape)}")
        observers = [observer] * len(ys) if isinstance(observer, Observer) else list(observer)
        if len(observers) != len(ys):
            raise DataError(f"{len(observers)} observers for {len(ys)} observation times")
        m = observers[0].out_dim if observers else 0
        if ys.ndim != 2 or any(o.out_dim != ys.shape[1] for o in observers):
            raise DataError(f"window readings have shape {tuple(ys.shape)}, expected (K, {m})")
        dtype, device = ensemble.dtype, ensemble.device
        present = present_mask(ys)
        stds = [o.noise_std.to(dtype=dtype, device=device) for o in observers]
        mu, A = mean_anomalies(ensemble)
        root = math.sqrt(n - 1)
        eye = torch.eye(n, dtype=dtype, device=device)
        w, T, T_inv = torch.zeros(n, dtype=dtype, device=device), eye, eye
        hessian, norms, costs = eye, [], []
        # The first iterate (w = 0, T = I) is the background itself: its run is the forecast.
        # The mean's own run only serves the member search, which needs readings.
        search = self.member_starts and bool(present.any())
        if search:
            runs = propagate(torch.cat([ensemble, mu[None]]))
            background = states = [x[:n] for x in runs]
            mean_states = [x[n:] for x in runs]
        else:
            background = states = propagate(ensemble)
        if len(states) != ys.shape[0]:
            raise DataError(f"propagate gave {len(states)} times for {ys.shape[0]} readings")
        if not bool(present.any()):
            return WindowAnalysis(ensemble, background, w, hessian, ())
        for it in range(self.iterations):
            if it > 0:
                states = propagate(mu + (w / root + T) @ A)
            innovations, jacobians = [], []
            misfits = torch.zeros(n + 1, dtype=dtype, device=device)  # the mean's, the members'
            for k, state in enumerate(states):
                idx = present[k]
                if not bool(idx.any()):
                    continue
                Y, std = observers[k](state)[:, idx], stds[k]
                if not bool(torch.isfinite(Y).all()):
                    raise FilterDivergence(
                        f"4denvar: the window forecast became non-finite (NaN/Inf) at "
                        f"Gauss-Newton iteration {it + 1}, observation time {k + 1} of the window"
                    )
                ybar = Y.mean(dim=0)
                innovations.append((ys[k, idx].to(dtype) - ybar) / std[idx])
                jacobians.append((T_inv @ ((Y - ybar) / (root * std[idx]))).T)
                if it == 0 and search:
                    both = torch.cat([observers[k](mean_states[k])[:, idx], Y])
                    misfits += ((ys[k, idx].to(dtype) - both) / std[idx]).square().sum(-1)
            lam = 1.0
            if it == 0 and self.adaptive_inflation:
                # The background run is at w = 0, T = I: only its anomalies scale.
                lam = innovation_inflation(torch.cat(innovations), torch.cat(jacobians))
                A, jacobians = lam * A, [lam * G for G in jacobians]
            if it == 0 and search:
                starts = member_controls(n, root / lam, dtype).to(device)
                best = lowest_cost(starts, misfits)
                if best > 0:  # the next iterate runs the ensemble around that member
                    w = starts[best]
                    norms.append(float(torch.linalg.vector_norm(w)))
                    continue
            gn = gauss_newton_step(w, innovations, jacobians)
            w, T, T_inv, hessian = gn.w, gn.transform, gn.transform_inv, gn.hessian
            norms.append(float(torch.linalg.vector_norm(gn.step)))
            costs.append(float(gn.cost))
            if norms[-1] < self.tolerance:
                break
        Ea = inflate(mu + (w / root + T) @ A, self.inflation)
        if self.rotate:
            Ea = rotate(Ea, gen)
        return WindowAnalysis(Ea, background, w, hessian, tuple(norms), tuple(costs))


#: Rolls an ensemble ``(N, d)`` at time ``a`` to sorted times ``≥ a`` (in frame units): one
#: ``(N, d)`` state per time.
Roller = Callable[[Tensor, float, Sequence[float]], list[Tensor]]


@dataclass(frozen=True)
class CycledWindows:
    """The ensemble trajectory of a window smoother cycled over a stream.

    Attributes
    ----------
    frames
        ``T`` ensembles ``(N, d)``, one per integer frame ``0..T−1`` (see
        :func:`cycle_windows` for which analysis each frame reports).
    analyses
        What ``analyse`` returned besides the ensemble, one entry per block.
    """

    frames: list[Tensor]
    analyses: list[object]


def cycle_windows(
    blocks: Sequence[WindowBlock],
    times: Sequence[float],
    n_frames: int,
    ensemble: Tensor,
    analyse: Callable[[Tensor, float, WindowBlock], tuple[Tensor, object]],
    roll: Roller,
    carry: Callable[[Tensor], Tensor] | None = None,
) -> CycledWindows:
    """Cycle a window smoother over observation times ``times`` and report an ensemble at
    every integer frame, the convention of the field twin experiment.

    Time index ``0`` is frame 0 (where ``ensemble``, the prior, sits) and index ``i ≥ 1`` is
    ``times[i−1]`` (sorted, real-valued, in frame units, ``0 ≤ τ ≤ T−1``; an observation at
    frame 0 is index 1 at the same time, reached by a zero-length forecast). Block ``j``'s
    control sits at ``τ(start_j)``; ``analyse(E, τ, block)`` returns the analysis ensemble
    there (and anything else to keep). Frame ``t`` reports the window-start analysis of the
    block whose span holds ``t`` forecast to ``t``: spans ``[0, τ(end_0)]``,
    ``(τ(end_{j−1}), τ(end_j)]``, the last one extended to ``T−1`` (as :class:`FourDEnVar`'s
    twin loop: the filtering analysis at window ends; earlier new times of a window also use
    its later readings). The next block's background is this analysis forecast to the next
    control time, passed through ``carry`` (e.g. a parameter random walk). Without any block
    the prior is forecast through all frames.
    """

    def tau(i: int) -> float:
        return 0.0 if i == 0 else float(times[i - 1])

    if not blocks:
        return CycledWindows(roll(ensemble, 0.0, [float(t) for t in range(n_frames)]), [])
    out: list[Tensor | None] = [None] * n_frames
    analyses: list[object] = []
    E, low = ensemble, -math.inf
    for j, block in enumerate(blocks):
        start = tau(block.start)
        Ea, info = analyse(E, start, block)
        analyses.append(info)
        nxt = blocks[j + 1] if j + 1 < len(blocks) else None
        high = float(n_frames - 1) if nxt is None else tau(block.end)
        frames = [t for t in range(n_frames) if low < t <= high]
        targets = sorted({float(t) for t in frames} | ({tau(nxt.start)} if nxt else set()))
        states = dict(zip(targets, roll(Ea, start, targets), strict=True))
        for t in frames:
            out[t] = states[float(t)]
        if nxt is not None:
            E = states[tau(nxt.start)]
            E = E if carry is None else carry(E)
        low = high
    assert all(e is not None for e in out)  # the spans cover [0, T−1]
    return CycledWindows(out, analyses)  # type: ignore[arg-type]
