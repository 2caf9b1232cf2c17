"""Training an LDNet on a trajectory store (DESIGN 5.1): stage 1 end to end, stage 2 the
reconstruction alone with the dynamics frozen; evaluation by relative RMSE.

Units: the loss is the MSE of per-channel z-scored fields at random points; scores are the
relative RMSE ``sqrt(Σ(pred − true)² / Σ true²)`` per frame over grid points and channels in
physical units, averaged over frames and trajectories.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import xarray as xr
from torch import Tensor

from latentda.data.distributed import is_rank0
from latentda.data.normalise import Normaliser
from latentda.data.splits import (
    TrajectorySet,
    dataset_info,
    forcing_clock,
    grid_coords,
    load_split,
    normaliser_for,
    split_indices,
    unit_periods,
)
from latentda.errors import DataError
from latentda.io import write_json
from latentda.metrics import relative_rmse
from latentda.schema import parse, to_dict
from latentda.surrogates.checkpoint import load_checkpoint, load_module_state, save_checkpoint
from latentda.surrogates.ldnet import ForcingClock, LDNet, LDNetConfig
from latentda.surrogates.training import (
    Objective,
    StageConfig,
    StageResult,
    rank_share,
    train_stage,
)

KIND = "ldnet"


@dataclass
class LDNetTrainConfig:
    """Everything ``latentda train ldnet`` reads from its YAML (all keys optional)."""

    model: LDNetConfig = field(default_factory=LDNetConfig)
    # On CPU an Adam step costs ~ batch·frames·points reconstruction evaluations, so each
    # step looks at 10 random frames of 2 trajectories: many cheap steps beat few dense ones
    # (Kolmogorov bench, equal compute, validation rel RMSE after 40 epochs: batch 2 0.30 vs
    # batch 8 0.46; lr 1e-2 0.18 vs 3e-3 0.22 vs 1e-3 0.34; BENCHMARKS.md).
    stage1: StageConfig = field(
        default_factory=lambda: StageConfig(
            epochs=450, batch_size=2, points=256, frames=10, lr=5e-3, eval_every=10
        )
    )
    stage2: StageConfig = field(
        default_factory=lambda: StageConfig(
            epochs=50, batch_size=2, points=512, frames=10, lr=1e-3, eval_every=10
        )
    )
    #: Adam steps fitting the initial latent of a new trajectory to its frame 0 (learned start).
    fit_steps: int = 200
    #: Fixed random grid points scored for early stopping (0: all); the test score uses all.
    val_points: int = 1024
    seed: int = 0


def train_config(data: dict[str, Any] | None) -> LDNetTrainConfig:
    """Validate a mapping into :class:`LDNetTrainConfig` (one-line errors naming the key)."""
    return parse(LDNetTrainConfig, data or {}, "ldnet")


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class PreparedSplit:
    """One split in the units the networks see.

    ``fields`` ``(n, T, C, P)`` z-scored with grid points flattened row-major; ``u`` ``(n, p)``
    in ``[-1, 1]``; ``raw`` the physical fields ``(n, T, C, H, W)`` for scores.
    """

    fields: Tensor
    u: Tensor
    raw: Tensor

    @classmethod
    def build(cls, split: TrajectorySet, norm: Normaliser) -> PreparedSplit:
        z = norm.normalise_fields(split.fields.double()).float()
        return cls(z.flatten(3), norm.normalise_params(split.params).float(), split.fields)


def gather_points(fields: Tensor, idx: Tensor) -> Tensor:
    """Values of ``fields`` ``(b, T, C, P)`` at per-frame points ``idx`` ``(T, m)``:
    ``(b, T, m, C)``."""
    b, t, c, _ = fields.shape
    picked = torch.gather(fields, 3, idx[None, :, None, :].expand(b, t, c, idx.shape[1]))
    return picked.transpose(2, 3)


def random_points(n_frames: int, n_grid: int, m: int, gen: torch.Generator) -> Tensor:
    """``(T, m)`` distinct random grid indices per frame (all of them when ``m ≥ P``)."""
    if m >= n_grid:
        return torch.arange(n_grid).expand(n_frames, n_grid)
    return torch.rand(n_frames, n_grid, generator=gen).argsort(dim=1)[:, :m]


# --------------------------------------------------------------------------- evaluation


def fit_initial_latents(
    model: LDNet, frame0: Tensor, coords: Tensor, steps: int, seed: int = 0
) -> Tensor:
    """Auto-decoder inference of the learned start: ``s_0`` ``(n, d_s)`` minimising the MSE
    of ``R(s_0, ξ)`` to the normalised frame 0 ``(n, C, P)``, from the mean learned ``s_0``,
    with the networks frozen (Adam, 1024 random points per step)."""
    gen = torch.Generator().manual_seed(seed)
    s0 = model.initial_latents.detach().mean(0).expand(frame0.shape[0], -1).clone()
    s0.requires_grad_(True)
    opt = torch.optim.Adam([s0], lr=0.05)
    with torch.enable_grad(), frozen(model):
        for _ in range(steps):
            idx = random_points(1, frame0.shape[-1], 1024, gen)[0]
            pred = model.reconstruct(s0, coords[idx])
            loss = ((pred - frame0[:, :, idx].transpose(1, 2)) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return s0.detach()


@contextmanager
def frozen(model: torch.nn.Module) -> Iterator[None]:
    """No parameter of ``model`` requires grad inside the block (so fitting an input never
    touches the weights' gradients, nor the DDP reducer)."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(f)


def start_latents(
    model: LDNet, split: PreparedSplit, coords: Tensor, fit_steps: int, training: bool
) -> Tensor | None:
    """Initial latents ``s_0`` ``(n, d_s)`` of a split for a learned-start model: the learned
    ones for the training split (in its order), fitted to frame 0 for any other; ``None`` for
    a shifted start, whose ``s_0`` follows from the parameters."""
    if not model.n_initial:
        return None
    if training:
        return model.initial_latents.detach()
    return fit_initial_latents(model, split.fields[:, 0], coords, fit_steps)


def evaluate(
    model: LDNet,
    split: PreparedSplit,
    coords: Tensor,
    norm: Normaliser,
    fit_steps: int = 200,
    points: Tensor | None = None,
) -> Tensor:
    """Relative RMSE per trajectory and frame ``(n, T)`` in physical units over grid points
    (all, or the indices ``points`` ``(m,)``) and channels. Latents are rolled out with the
    true parameters; a learned-start model first fits each ``s_0`` to frame 0."""
    n, t = split.fields.shape[:2]
    s0 = start_latents(model, split, coords, fit_steps, training=False)
    where = slice(None) if points is None else points
    xi = coords[where]
    scores = torch.empty(n, t, dtype=torch.float64)
    # Frames per reconstruction call, so each activation stays near 2^20 numbers: larger
    # ones are fresh mmaps whose page faults doubled the cost of a full-grid evaluation.
    chunk = max(1, (1 << 20) // (xi.shape[0] * model.config.recon_width))
    with torch.no_grad():
        lifted = model.coordinate_lift(xi)
        for i in range(n):
            s = model.rollout(split.u[i : i + 1], t, s0=None if s0 is None else s0[i : i + 1])
            pred = torch.cat(
                [model.reconstruct(c, xi, lifted=lifted) for c in s[0].split(chunk)]
            )  # (T, P, C)
            pred = norm.denormalise_fields(pred.double(), channel_axis=-1).transpose(1, 2)
            true = split.raw[i].double().flatten(2)[..., where]  # (T, C, P)
            scores[i] = relative_rmse(pred.flatten(1), true.flatten(1))
    return scores


#: Grid points per frame (fixed, seeded) at which :func:`model_error_std` is estimated.
MODEL_ERROR_POINTS = 1024
#: Seed of those points.
MODEL_ERROR_SEED = 0


def model_error_std(
    model: LDNet,
    split: PreparedSplit,
    coords: Tensor,
    s0: Tensor | None,
    points: int = MODEL_ERROR_POINTS,
    seed: int = MODEL_ERROR_SEED,
) -> Tensor:
    """The LDNet's own error per frame and channel, in normalised (z-score) units:

    ``σ_m(t, c) = sqrt( (1/(n m)) Σ_i Σ_{ξ ∈ Ξ_t} (R(s_t(u_i), ξ)_c − x̃_{i,t,c}(ξ))² )``

    over the ``n`` trajectories of ``split`` and a fixed random set ``Ξ_t`` of ``m`` grid
    points per frame, where ``s_t(u_i)`` is the LDNet's latent rollout with the true
    parameters from ``s0`` (the trajectory the encoder's targets use, see
    :func:`start_latents`): the reconstruction and rollout error that no latent ensemble
    carries. Pass the validation split (never the test split, which scores the methods).

    Parameters
    ----------
    model
        The trained LDNet.
    split
        Normalised fields ``(n, T, C, P)`` and parameters ``(n, p)``.
    coords
        Grid coordinates ``(P, k)`` in ``[-1, 1]``.
    s0
        Initial latents ``(n, d_s)`` (learned start), ``None`` for the shifted start.
    points
        ``m`` per frame (all ``P`` when ``m ≥ P``); drawn by :func:`random_points` from a
        generator seeded with ``seed``, so the estimate is deterministic and costs
        ``n·T·m`` reconstruction evaluations (seconds), not a pass over the whole grid.

    Returns
    -------
    Tensor
        ``σ_m`` ``(T, C)`` float64.
    """
    n, n_frames, n_channels, n_grid = split.fields.shape
    idx = random_points(n_frames, n_grid, points, torch.Generator().manual_seed(seed))
    xi = coords[idx]  # (T, m, k)
    m = idx.shape[1]
    sq = torch.zeros(n_frames, n_channels, dtype=torch.float64)
    # Frames per reconstruction call, keeping activations near 2^20 numbers (see evaluate).
    chunk = max(1, (1 << 20) // (m * model.config.recon_width))
    with torch.no_grad():
        lifted = model.coordinate_lift(xi)  # (T, m, width)
        for i in range(n):
            s = model.rollout(
                split.u[i : i + 1], n_frames, s0=None if s0 is None else s0[i : i + 1]
            )
            pred = torch.cat(
                [
                    model.reconstruct(sc, xc, lifted=lc)
                    for sc, xc, lc in zip(
                        s[0].split(chunk), xi.split(chunk), lifted.split(chunk), strict=True
                    )
                ]
            )  # (T, m, C)
            true = gather_points(split.fields[i : i + 1], idx)[0]  # (T, m, C)
            sq += ((pred.double() - true.double()) ** 2).sum(1)
    return torch.sqrt(sq / (n * m))


def model_error_record(
    model: LDNet, split: PreparedSplit, coords: Tensor, fit_steps: int
) -> dict[str, Any]:
    """:func:`model_error_std` on the validation ``split`` (a learned start first fits
    each ``s_0`` to frame 0, as :func:`evaluate` does), with what it is averaged over: the
    checkpoint's ``model_error`` entry."""
    s0 = start_latents(model, split, coords, fit_steps, training=False)
    std = model_error_std(model, split, coords, s0)
    n, n_frames, _, n_grid = split.fields.shape
    return {
        "std": std.tolist(),
        "units": "normalised (per-channel z-score)",
        "definition": "RMS of R(s_t(u_true), xi) - x_t per frame and channel",
        "split": "val",
        "trajectories": int(n),
        "frames": int(n_frames),
        "points_per_frame": int(min(MODEL_ERROR_POINTS, n_grid)),
        "points_seed": MODEL_ERROR_SEED,
        "initial_latent": "fitted to frame 0" if s0 is not None else "shifted start",
    }


def ldnet_model_error(run: LDNetRun, ds: xr.Dataset) -> Tensor | None:
    """``σ_m`` ``(T, C)`` float64 of a loaded LDNet: the checkpoint's ``model_error`` entry,
    or, for a checkpoint trained before it existed, computed now from ``ds``'s validation
    split by :func:`model_error_record` (deterministic: the same value training would have
    stored). ``None``, with a warning, if ``ds`` has no validation split to compute it from.
    """
    record = run.meta.get("model_error")
    if record is None:
        if split_indices(ds, "val").size == 0:
            warnings.warn(
                "this LDNet checkpoint holds no model-error estimate and the dataset has no "
                "'val' trajectories to compute it from: methods that need it will refuse",
                stacklevel=2,
            )
            return None
        split = PreparedSplit.build(load_split(ds, "val"), run.normaliser)
        fit_steps = int(run.meta["training"]["fit_steps"])
        record = model_error_record(run.model, split, grid_coords(ds), fit_steps)
    return torch.tensor(record["std"], dtype=torch.float64)


# --------------------------------------------------------------------------- objective


class ReconstructionLoss(Objective):
    """MSE of normalised fields at random per-frame points, for trajectories ``batch``.

    Stage 1 rolls the latents out from the model (gradients through the dynamics); stage 2
    reads fixed latents ``latents`` ``(n, T, d_s)``."""

    def __init__(
        self,
        model: LDNet,
        train: PreparedSplit,
        coords: Tensor,
        stage: StageConfig,
        validate_fn: Any,
        latents: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self._train, self._coords = train, coords
        self._points, self._frames = stage.points, stage.frames
        self._validate, self._latents = validate_fn, latents

    def forward(self, batch: Tensor, gen: torch.Generator) -> Tensor:
        f = self._train.fields
        n_frames, n_grid = f.shape[1], f.shape[3]
        # The same draws on every rank: frames, then points per drawn frame.
        frames = torch.arange(n_frames)
        if 0 < self._frames < n_frames:
            frames = torch.randperm(n_frames, generator=gen)[: self._frames].sort().values
        idx = random_points(len(frames), n_grid, self._points, gen)
        local, scale = rank_share(batch)
        if self._latents is not None:
            s = self._latents[local][:, frames]
        else:  # the rollout is cheap; only the reconstruction is subsampled
            which = local if self.model.n_initial else None
            s = self.model.rollout(self._train.u[local], n_frames, which=which)[:, frames]
        pred = self.model.reconstruct(s, self._coords[idx])
        err = ((pred - gather_points(f[local][:, frames], idx)) ** 2).sum()
        return err * (scale / (len(batch) * len(frames) * idx.shape[1] * f.shape[2]))

    def validate(self) -> float:
        return float(self._validate())


# --------------------------------------------------------------------------- driver


@dataclass
class LDNetRun:
    """A trained LDNet with what is needed to apply it."""

    model: LDNet
    normaliser: Normaliser
    meta: dict[str, Any]


def train_ldnet(
    ds: xr.Dataset,
    out: str | Path,
    config: LDNetTrainConfig,
    progress: bool = True,
    on_epoch_end: Any = None,
    log: Any = None,
) -> dict[str, Any]:
    """Train stage 1 and stage 2 on the store ``ds``; writes ``out/ldnet.{json,safetensors}``
    and ``out/metrics.json`` and returns the metrics. Resumes from ``out/state``."""
    out = Path(out)
    info = dataset_info(ds)
    splits = {s: load_split(ds, s) for s in ("train", "val", "test")}
    norm = normaliser_for(ds, splits["train"])
    data = {s: PreparedSplit.build(v, norm) for s, v in splits.items()}
    coords = grid_coords(ds)
    n_train, n_frames = len(splits["train"]), info["shape"][0]
    model = LDNet(
        config.model,
        n_params=len(info["params"]),
        n_channels=len(info["channels"]),
        coord_dim=coords.shape[1],
        n_initial=n_train,
        periods=unit_periods(ds),
        clock=ForcingClock(*forcing_clock(info)),
    )
    fp = {"config": to_dict(config), "data": info["fingerprint"]}
    t0 = time.perf_counter()

    n_grid = coords.shape[0]
    val_idx = None
    if 0 < config.val_points < n_grid:
        val_gen = torch.Generator().manual_seed(config.seed + 7)
        val_idx = torch.randperm(n_grid, generator=val_gen)[: config.val_points]

    def val_score() -> float:
        scores = evaluate(model, data["val"], coords, norm, config.fit_steps, val_idx)
        return float(scores.mean())

    stage1 = ReconstructionLoss(model, data["train"], coords, config.stage1, val_score)
    r1 = train_stage(
        stage1,
        list(model.parameters()),
        n_train,
        config.stage1,
        config.seed,
        out / "state",
        "stage1",
        {**fp, "stage": 1},
        progress,
        on_epoch_end,
        log,
    )
    test1 = evaluate(model, data["test"], coords, norm, config.fit_steps)

    for p in model.dynamics_parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        s0 = start_latents(model, data["train"], coords, config.fit_steps, training=True)
        latents = model.rollout(data["train"].u, n_frames, s0=s0)
    stage2 = ReconstructionLoss(
        model, data["train"], coords, config.stage2, val_score, latents=latents
    )
    r2 = train_stage(
        stage2,
        model.reconstruction_parameters(),
        n_train,
        config.stage2,
        config.seed + 1,
        out / "state",
        "stage2",
        {**fp, "stage": 2},
        progress,
        on_epoch_end,
        log,
        baseline=r1.best_score,
    )
    test2 = evaluate(model, data["test"], coords, norm, config.fit_steps)

    # σ_m of the final weights, on the validation split (the test split scores methods).
    model_error = model_error_record(model, data["val"], coords, config.fit_steps)
    meta = {
        "kind": KIND,
        "config": to_dict(config.model),
        "dims": model.dims(),
        "normaliser": norm.to_dict(),
        "data": info,
        "training": to_dict(config),
        "model_error": model_error,
    }
    metrics = {
        "test_rel_rmse": float(test2.mean()),
        "test_rel_rmse_std": float(test2.mean(1).std()) if len(test2) > 1 else 0.0,
        "test_rel_rmse_per_frame": test2.mean(0).tolist(),
        "test_rel_rmse_stage1": float(test1.mean()),
        "averaged_over": {
            "trajectories": int(test2.shape[0]),
            "frames": int(test2.shape[1]),
            "split": "test",
        },
        "initial_latent": config.model.initial
        + (" (fitted to frame 0 of each test trajectory)" if model.n_initial else ""),
        # Stage seconds add up over resumed runs; this process's wall time may not.
        "train_time_s": r1.seconds + r2.seconds,
        "wall_s": time.perf_counter() - t0,
        "parameters": sum(p.numel() for p in model.parameters()),
        "latent_dim": config.model.latent_dim,
        "stage1": _stage_summary(r1),
        "stage2": _stage_summary(r2),
        "model_error": model_error,
        "data": info["fingerprint"],
        "config": to_dict(config),
    }
    if is_rank0():
        save_checkpoint(out, KIND, model.state_dict(), meta)
        write_json(out / "metrics.json", metrics)
    return metrics


def _stage_summary(r: StageResult) -> dict[str, Any]:
    return {
        "epochs": r.epochs_run,
        "best_val_rel_rmse": r.best_score,
        "best_epoch": r.best_epoch,
        "seconds": r.seconds,
        "stopped_early": r.stopped_early,
    }


def load_ldnet(directory: str | Path, ds: xr.Dataset | None = None) -> LDNetRun:
    """Load a trained LDNet; with ``ds``, refuse a dataset of another system or grid."""
    tensors, meta = load_checkpoint(directory, "ldnet", KIND)
    cfg = parse(LDNetConfig, meta["config"], "ldnet.model")
    model = LDNet.from_dims(cfg, meta["dims"])
    load_module_state(model, tensors, f"checkpoint {directory}")
    model.eval()
    if ds is not None:
        check_compatible(meta, dataset_info(ds), directory)
    return LDNetRun(model, Normaliser.from_dict(meta["normaliser"]), meta)


def check_compatible(meta: dict[str, Any], info: dict[str, Any], where: Any) -> None:
    """A checkpoint applies to data of the same system (name, grid, channels, parameters)."""
    trained = meta["data"]
    for key in ("channels", "params", "axes", "shape"):
        if trained[key] != info[key]:
            raise DataError(
                f"checkpoint {where} was trained on {trained['system'].get('name')} data with "
                f"{key} {trained[key]}, but this dataset has {info[key]}"
            )
    if trained["system"].get("name") != info["system"].get("name"):
        raise DataError(
            f"checkpoint {where} was trained on {trained['system'].get('name')} "
            f"data, not {info['system'].get('name')}"
        )
