"""LD-EnSF (DESIGN 6.3): the ensemble score filter run entirely in an LDNet's latent space.

The filter state of member ``j`` is ``κ_j = [s_j, u_j] ∈ R^{d_s + p}``: the LDNet latent and the
normalised parameters (``u ∈ [-1, 1]^p`` on the prior's support). One frame ``t`` is

- **forecast** (``t > 0``): ``s_j ← s_j + Δt F([u_j, s_j])`` (one LDNet step per frame, so a gap
  of ``k`` frames between observations is ``k`` steps) and ``u_j ← u_j + σ_u ξ_j``
  (optional random walk against parameter collapse, ``ξ_j ~ N(0, I)``);
- **latent observation**: ``φ_t = E(y_{t_1}, …, y_t)`` from the causal encoder, fed the
  normalised readings of the observed frames only;
- **analysis**: :class:`~latentda.filters.ensf.EnSF` with the identity observer
  ``φ_t = κ + ε``, ``ε ~ N(0, diag σ²)``, ``σ`` ``(d_s + p,)`` the encoder's residual estimate
  (DESIGN 5.2), run on ``κ' = κ/σ`` where the noise is ``N(0, I)``: one EnSF scale then suits
  dimensions whose ``σ`` differ by orders of magnitude (see
  :func:`~latentda.filters.latent_analysis.ldensf_ensf`). The analysis is a strategy
  (:mod:`latentda.filters.latent_analysis`): the ETKF in its place is the ablation that shows
  what the score filter's update costs or gains.

No full-order model and no reconstruction run in the loop; fields come from ``R(s, ξ)`` only
when :meth:`LDEnSFResult.reconstruct` asks, which is why its time is reported separately.
"""

from __future__ import annotations

import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import xarray as xr
from torch import Tensor, nn

from latentda.data.normalise import Normaliser
from latentda.data.splits import dataset_axes, grid_coords, unit_coords
from latentda.errors import ConfigError, DataError
from latentda.filters.ensemble import check_finite, clip_params
from latentda.filters.latent_analysis import LatentAnalysis, ScoreAnalysis
from latentda.observations.observer import present_mask
from latentda.observations.sensors import same_sensors
from latentda.surrogates.encoder import FixedOrderEncoder
from latentda.surrogates.ldnet import LDNet
from latentda.surrogates.train_encoder import load_encoder
from latentda.surrogates.train_ldnet import ldnet_model_error, load_ldnet


@dataclass(frozen=True, eq=False)
class LatentSurrogate:
    """A trained LDNet, its observation encoder and what applying them needs.

    Attributes
    ----------
    ldnet
        The latent dynamics ``F`` and reconstruction ``R``.
    encoder
        Causal encoder: normalised readings ``(B, T, S, C)`` -> ``(B, T, d_s + p)``, with the
        latent-observation noise estimate in its ``noise_std`` buffer ``(d_s + p,)``;
        ``None`` for methods that read the sensors through ``R`` (LEVDA).
    normaliser
        Field z-scores and parameter bounds the networks were trained with.
    axes
        Grid axes ``[(H,), (W,)]`` in the system's units.
    grid
        Grid nodes ``(H·W, 2)`` in ``[-1, 1]²``, row-major (:func:`grid_coords`).
    sensors
        Sensor coordinates ``(S, 2)`` in grid units that the encoder was trained on
        (``(0, 2)`` without an encoder).
    every
        Frame spacing of the observations the encoder was trained on.
    model_error
        ``σ_m`` ``(T, C)`` float64: the LDNet's own error per frame and channel in normalised
        units, the RMS over validation trajectories and grid points of
        ``R(s_t(u_true), ξ) − x̃_t`` (:func:`~latentda.surrogates.train_ldnet.model_error_std`);
        ``None`` when unknown (a hand-built surrogate, or an old checkpoint loaded with a
        store without a validation split).
    """

    ldnet: LDNet
    encoder: nn.Module | None
    normaliser: Normaliser
    axes: list[Tensor]
    grid: Tensor
    sensors: Tensor
    every: int = 1
    model_error: Tensor | None = None

    @classmethod
    def load(
        cls, ldnet_dir: str | Path, encoder_dir: str | Path | None, ds: xr.Dataset
    ) -> LatentSurrogate:
        """Checkpoints written by ``latentda train`` (``encoder_dir=None``: the LDNet
        alone); refuses an LDNet trained on another system or grid than ``ds``, and an
        encoder trained for another LDNet. :attr:`model_error` comes from the LDNet's
        checkpoint; one trained before it was stored there gets it computed from ``ds``'s
        validation split (:func:`~latentda.surrogates.train_ldnet.ldnet_model_error`)."""
        run = load_ldnet(ldnet_dir, ds)
        encoder, points, every = None, torch.zeros(0, 2, dtype=torch.float64), 1
        if encoder_dir is not None:
            encoder, meta = load_encoder(encoder_dir, ldnet_dir)
            points = torch.tensor(meta["points"], dtype=torch.float64)
            every = int(meta["sensors"]["every"])
        return cls(
            run.model,
            encoder,
            run.normaliser,
            dataset_axes(ds),
            grid_coords(ds),
            points,
            every,
            ldnet_model_error(run, ds),
        )

    def require_encoder(self, method: str) -> nn.Module:
        """The encoder, or a one-line :class:`ConfigError` naming ``method`` that needs it."""
        if self.encoder is None:
            raise ConfigError(f"{method} needs an observation encoder (latentda train encoder)")
        return self.encoder

    def require_model_error(self, method: str) -> Tensor:
        """:attr:`model_error` ``(T, C)``, or a one-line :class:`ConfigError` naming
        ``method`` that needs it."""
        if self.model_error is None:
            raise ConfigError(
                f"{method} needs the LDNet's model-error estimate (LatentSurrogate.model_error; "
                "load the surrogate with a store holding its 'val' split), or model_error=False"
            )
        return self.model_error

    @property
    def latent_dim(self) -> int:
        """``d_s``."""
        return self.ldnet.config.latent_dim

    @property
    def state_dim(self) -> int:
        """``d_s + p``, the dimension of ``κ``."""
        return self.latent_dim + self.ldnet.n_params

    @property
    def grid_shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return (len(self.axes[0]), len(self.axes[1]))

    def unit(self, points: Tensor) -> Tensor:
        """Coordinates ``(…, 2)`` in grid units -> the networks' ``[-1, 1]²``."""
        return unit_coords(points, self.axes)


class InitialLatent(ABC):
    """Strategy drawing the initial latents ``s`` ``(N, d_s)`` of members with parameters
    ``u`` ``(N, p)`` (normalised, drawn from the prior), never from a test truth."""

    @abstractmethod
    def sample(self, model: LDNet, u: Tensor, gen: torch.Generator) -> Tensor: ...


class ShiftedStart(InitialLatent):
    """``s_j = Δt F([u_j, 0])``, the LDNet's own start for parameters ``u_j``."""

    def sample(self, model: LDNet, u: Tensor, gen: torch.Generator) -> Tensor:
        return model.initial_latent(u)


class LearnedStart(InitialLatent):
    """``s_j`` resampled with replacement from the learned ``s_0`` of the training
    trajectories (the empirical distribution of initial states; the data pin it down)."""

    def sample(self, model: LDNet, u: Tensor, gen: torch.Generator) -> Tensor:
        if not model.n_initial:
            raise ConfigError("LearnedStart needs an LDNet trained with initial: learned")
        which = torch.randint(model.n_initial, (u.shape[0],), generator=gen)
        return model.initial_latents.detach()[which]


def default_start(model: LDNet) -> InitialLatent:
    """The start matching how ``model`` was trained."""
    return LearnedStart() if model.n_initial else ShiftedStart()


def prior_kappa(model: LDNet, n: int, start: InitialLatent | None, gen: torch.Generator) -> Tensor:
    """Prior ``κ = [s, u]`` ``(n, d_s + p)`` at frame 0, before any data: ``u ~ U[-1, 1]^p``
    (the prior, never a test truth), ``s`` from ``start`` (``None``: :func:`default_start`),
    in the LDNet's dtype."""
    dtype = next(model.parameters()).dtype
    u = 2.0 * torch.rand(n, model.n_params, generator=gen, dtype=dtype) - 1
    start = default_start(model) if start is None else start
    with torch.no_grad():
        s = start.sample(model, u, gen)
    return torch.cat([s, u], dim=-1)


class LatentTrajectory:
    """What an assimilated latent stream offers (mixed into :class:`LDEnSFResult` and
    :class:`~latentda.filters.levda.LEVDAResult`): the latent and parameter parts of its
    ``κ`` and the fields decoded from it.

    The class holding it provides ``kappa`` ``(T, N, d_s + p)`` (parameters normalised),
    ``timings`` (with a ``reconstruction_s`` entry) and ``surrogate``.
    """

    kappa: Tensor
    timings: dict[str, float]
    surrogate: LatentSurrogate

    @property
    def latent(self) -> Tensor:
        """``s`` ``(T, N, d_s)``."""
        return self.kappa[..., : self.surrogate.latent_dim]

    @property
    def params(self) -> Tensor:
        """Parameters in physical units ``(T, N, p)`` (float64)."""
        u = self.kappa[..., self.surrogate.latent_dim :].double()
        return self.surrogate.normaliser.denormalise_params(u)

    def reconstruct(
        self,
        frames: Sequence[int] | Tensor | None = None,
        members: bool = False,
        points: Tensor | None = None,
    ) -> Tensor:
        """Fields in physical units decoded by ``R`` at ``frames`` (default: all); the time
        is booked as ``reconstruction_s``.

        Parameters
        ----------
        frames
            Frame indices ``(F,)``.
        members
            Return every member; otherwise the ensemble mean **of the fields**
            ``(1/N) Σ_j R(s_j, ξ)``, not ``R`` at the mean latent.
        points
            Coordinates ``(P, 2)`` in grid units; ``None`` decodes on the grid.

        Returns
        -------
        Tensor
            float64, ``(F, [N,] C, H, W)`` on the grid, ``(F, [N,] C, P)`` at ``points``.
        """
        t0 = time.perf_counter()
        frames = range(self.kappa.shape[0]) if frames is None else frames
        fields = decode_latents(self.surrogate, self.latent, frames, members, points)
        self.timings["reconstruction_s"] += time.perf_counter() - t0
        return fields


@dataclass
class LDEnSFResult(LatentTrajectory):
    """The ensemble of one assimilated stream.

    Attributes
    ----------
    kappa
        ``κ`` at every frame ``(T, N, d_s + p)``: the analysis where ``analysed``, else the
        forecast; parameters normalised.
    analysed
        ``(T,)`` bool: frames with at least one present reading.
    latent_obs
        Encoder outputs ``φ_t`` ``(T, d_s + p)``, NaN at frames without readings.
    timings
        Seconds: ``dynamics_s`` (latent steps), ``filter_s`` (encoder + EnSF) and
        ``reconstruction_s`` (accumulated over :meth:`reconstruct` calls).
    surrogate
        The surrogate that produced ``kappa`` (decodes it).
    """

    kappa: Tensor
    analysed: Tensor
    latent_obs: Tensor
    timings: dict[str, float]
    surrogate: LatentSurrogate


def check_readings(readings: Tensor, n_sensors: int, n_channels: int, min_frames: int = 0) -> None:
    """Refuse a reading stream that is not ``(T, S, C)`` = frames × ``n_sensors`` ×
    ``n_channels`` with ``T ≥ min_frames``, with one :class:`DataError`."""
    shape = (n_sensors, n_channels)
    if readings.ndim != 3 or len(readings) < min_frames or readings.shape[1:] != shape:
        raise DataError(
            f"readings have shape {tuple(readings.shape)}, expected (T, {shape[0]}, "
            f"{shape[1]}): frames × sensors × channels"
        )


#: Activation floats per decoding chunk (8 MB in float32).
_DECODE_FLOATS = 2**21


def decode_latents(
    surrogate: LatentSurrogate,
    latent: Tensor,
    frames: Iterable[int],
    members: bool = False,
    points: Tensor | None = None,
) -> Tensor:
    """Fields in physical units decoded by ``R`` from latents ``(T, N, d_s)`` at ``frames``
    (``(F,)``): every member, or the ensemble mean of the fields ``(1/N) Σ_j R(s_j, ξ)``;
    on the grid (``points=None``) or at ``points`` ``(P, 2)`` in grid units. Returns float64
    ``(F, [N,] C, H, W)`` on the grid, ``(F, [N,] C, P)`` at ``points``."""
    sur, model = surrogate, surrogate.ldnet
    xi = sur.grid if points is None else sur.unit(points)
    out = []
    with torch.no_grad():
        lifted = model.coordinate_lift(xi)  # (P, width), shared by all frames
        # Members in chunks whose activations (chunk·P·width floats) stay below glibc's
        # mmap threshold: larger ones are fresh page-faulting mappings at every layer (one
        # 64² frame of 20 members decodes 2x faster in chunks of 4-5).
        chunk = max(1, _DECODE_FLOATS // (lifted.shape[0] * lifted.shape[1]))
        for t in frames:  # one frame at a time keeps activations at N·P·width
            s_t = latent[int(t)]
            z = torch.cat(
                [
                    model.reconstruct(s_t[i : i + chunk], xi, lifted=lifted)
                    for i in range(0, len(s_t), chunk)
                ]
            )  # (N, P, C)
            f = sur.normaliser.denormalise_fields(z.double(), -1).transpose(-1, -2)
            out.append(f if members else f.mean(0))
    fields = torch.stack(out)
    if points is None:
        fields = fields.unflatten(-1, sur.grid_shape)
    return fields


@dataclass(frozen=True)
class LDEnSF:
    """Latent-dynamics ensemble score filter.

    Parameters
    ----------
    ensemble_size
        ``N``.
    analysis
        The update of ``κ`` by ``φ``: :class:`~latentda.filters.latent_analysis.ScoreAnalysis`
        (EnSF, the method's own; see :func:`~latentda.filters.latent_analysis.ldensf_ensf`
        for the defaults) or :class:`~latentda.filters.latent_analysis.KalmanAnalysis` (the
        ETKF ablation).
    param_jitter
        ``σ_u``: std of the random walk added to the normalised parameters at every forecast
        step (0: parameters persist exactly).
    clip_params
        Project ``u`` onto the prior's support ``[-1, 1]^p`` after each analysis and jitter:
        the uniform prior has no mass outside, and the LDNet never saw such ``u``.
    start
        Initial-latent strategy; ``None`` picks :func:`default_start` for the LDNet.
    """

    ensemble_size: int = 20
    analysis: LatentAnalysis = field(default_factory=ScoreAnalysis)
    param_jitter: float = 0.0
    clip_params: bool = True
    start: InitialLatent | None = None

    def __post_init__(self) -> None:
        if self.ensemble_size < 2:
            raise ConfigError(f"ensemble_size must be >= 2, got {self.ensemble_size}")
        if not 0.0 <= self.param_jitter < float("inf"):
            raise ConfigError(f"param_jitter must be finite and >= 0, got {self.param_jitter}")

    def initial_ensemble(self, surrogate: LatentSurrogate, gen: torch.Generator) -> Tensor:
        """``κ`` at frame 0 before any data, ``(N, d_s + p)``: ``u ~ U[-1, 1]^p`` (the prior),
        ``s`` from the start strategy."""
        return prior_kappa(surrogate.ldnet, self.ensemble_size, self.start, gen)

    def assimilate(
        self,
        surrogate: LatentSurrogate,
        readings: Tensor,
        gen: torch.Generator,
        points: Tensor | None = None,
    ) -> LDEnSFResult:
        """Filter one observation stream.

        Parameters
        ----------
        surrogate
            Trained LDNet and encoder.
        readings
            ``(T, S, C)`` in physical units at the dataset's frames ``0..T-1``; NaN = missing.
            A frame with no present reading gets no encoder step and no analysis (only the
            forecast), so ``every``-th-frame observations are NaN frames in between. The
            encoder reads the observed frames as consecutive steps, as it was trained on
            frames ``0, every, 2·every, …``.
        gen
            The only source of randomness (prior draw, jitter, EnSF noise).
        points
            Sensor coordinates in grid units, ``(S, 2)`` or ``(T, S, 2)`` for sensors that
            move; other positions than the training layout need a location-aware encoder.
            ``None``: the training layout.

        Raises
        ------
        FilterDivergence
            If the ensemble becomes non-finite; the message names the frame.
        """
        sur, model = surrogate, surrogate.ldnet
        n_sensors = (sur.sensors if points is None else points).shape[-2]
        check_readings(readings, n_sensors, sur.ldnet.n_channels, min_frames=1)
        observed = present_mask(readings).flatten(1).any(1)  # (T,)
        self._check_points(sur, readings, points, bool(observed.any()))
        d_s = sur.latent_dim
        self._warn_schedule(observed, sur.every)
        loc = sur.unit(sur.sensors if points is None else points)
        y = sur.normaliser.normalise_fields(readings.double(), channel_axis=-1)
        y = y.to(next(model.parameters()).dtype)
        # A stream without readings (the no-assimilation reference) needs no encoder.
        encoder = sur.require_encoder("LD-EnSF") if observed.any() else None
        sigma = encoder.noise_std.to(y.dtype) if encoder is not None else None
        kappa = self.initial_ensemble(sur, gen)
        check_finite(kappa, 0, "initial ensemble", "LD-EnSF")
        out = kappa.new_empty(len(readings), *kappa.shape)
        phis = kappa.new_full((len(readings), sur.state_dim), float("nan"))
        state = None  # LSTM memory over the observed frames
        t_dyn = t_filter = 0.0
        with torch.no_grad():
            for t in range(len(readings)):
                if t > 0:
                    t0 = time.perf_counter()
                    kappa = self._forecast(model, kappa, d_s, t - 1, gen)
                    t_dyn += time.perf_counter() - t0
                    check_finite(kappa, t, "forecast", "LD-EnSF")
                if observed[t]:
                    t0 = time.perf_counter()
                    assert encoder is not None and sigma is not None  # observed[t]
                    at = loc[t] if loc.ndim == 3 else loc  # moving sensors: (T, S, 2)
                    phi, state = encoder(y[t][None, None], at, state)
                    phis[t] = phi[0, 0]
                    analysis = self.analysis(kappa, phis[t], sigma, gen)
                    kappa = self._clip(analysis, d_s)
                    t_filter += time.perf_counter() - t0
                    check_finite(kappa, t, "analysis", "LD-EnSF")
                out[t] = kappa
        timings = {"dynamics_s": t_dyn, "filter_s": t_filter, "reconstruction_s": 0.0}
        return LDEnSFResult(out, observed, phis, timings, sur)

    def _forecast(
        self, model: LDNet, kappa: Tensor, d_s: int, frame: int, gen: torch.Generator
    ) -> Tensor:
        """From ``frame`` to the next: LDNet step of ``s``, random walk of ``u``."""
        s, u = kappa[:, :d_s], kappa[:, d_s:]
        s = model.step(s, u, k=float(frame))
        if self.param_jitter > 0:
            u = u + self.param_jitter * torch.randn(u.shape, generator=gen, dtype=u.dtype)
        return self._clip(torch.cat([s, u], dim=-1), d_s)

    def _clip(self, kappa: Tensor, d_s: int) -> Tensor:
        return clip_params(kappa, d_s) if self.clip_params else kappa

    @staticmethod
    def _check_points(
        sur: LatentSurrogate, readings: Tensor, points: Tensor | None, encodes: bool
    ) -> None:
        if points is not None and points.ndim == 3 and len(points) != len(readings):
            raise DataError(f"{len(points)} sensor positions for {len(readings)} frames")
        moved = points is not None and not same_sensors(points, sur.sensors)
        # Without a present reading nothing is encoded (the no-assimilation reference).
        if encodes and moved and isinstance(sur.encoder, FixedOrderEncoder):
            raise DataError(
                f"these readings come from other sensors than the {len(sur.sensors)} a "
                "fixed-order encoder was trained on: train a location-aware encoder "
                "(encoder model.mode: location) for other layouts"
            )

    @staticmethod
    def _warn_schedule(observed: Tensor, every: int) -> None:
        expected = torch.arange(len(observed)) % every == 0
        if observed.any() and not torch.equal(observed, expected):
            # One message per schedule (not per stream), so the warnings filter shows it once.
            warnings.warn(
                f"the observed frames differ from the encoder's training schedule (frames 0, "
                f"{every}, {2 * every}, …): its latent estimates may be off",
                stacklevel=3,
            )
