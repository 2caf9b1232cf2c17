"""The training loop shared by every surrogate: Adam, learning-rate decay, early stopping,
resumable checkpoints and data-parallel training under ``torchrun``.

A model supplies a :class:`Objective`, an ``nn.Module`` whose ``forward(batch, gen)`` returns
this rank's share of the mini-batch loss, scaled so that the shares *sum* to the global
mean loss. DDP averages gradients over the ``W`` ranks, so each rank's loss is multiplied by
``W`` (see :func:`rank_share`); the result equals one process on the same global batch up to
floating-point summation order. Every rank draws the same batch and random points from the
same seeded generator and keeps its slice of the trajectories.

The loop state (weights, optimiser, generator, epoch, best weights, history) is saved after
every epoch by rank 0 (:mod:`latentda.surrogates.checkpoint`), so a killed run resumes at the
last finished epoch and ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from latentda.data.distributed import barrier, is_rank0
from latentda.errors import ConfigError, DataError, TrainingDivergence, TrainingWarning
from latentda.schema import ADDED_LATER, Tagged, non_negative, positive
from latentda.surrogates.checkpoint import (
    load_checkpoint,
    load_module_state,
    optimizer_tensors,
    prefixed,
    restore_optimizer,
    save_checkpoint,
    unprefixed,
)

# --------------------------------------------------------------------------- decay


@dataclass
class Decay(Tagged):
    """Learning-rate factor as a function of the epoch (a strategy object)."""

    registry: ClassVar[dict[str, type]] = {}
    default_tag: ClassVar[str | None] = "cosine"

    def factor(self, epoch: int, epochs: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


@Decay.register
@dataclass
class CosineDecay(Decay):
    """``floor + (1 − floor)·½(1 + cos(π e / E))`` over ``E`` epochs."""

    tag: ClassVar[str] = "cosine"
    name: str = "cosine"
    floor: float = 0.01

    def factor(self, epoch: int, epochs: int) -> float:
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * epoch / epochs))


@Decay.register
@dataclass
class StepDecay(Decay):
    """``gamma^⌊e / every⌋``."""

    tag: ClassVar[str] = "step"
    name: str = "step"
    every: int = 100
    gamma: float = 0.5

    def factor(self, epoch: int, epochs: int) -> float:
        return self.gamma ** (epoch // self.every)

    def validate(self, where: str) -> None:
        positive(where, every=self.every, gamma=self.gamma)


@dataclass
class StageConfig:
    """One training stage. ``batch_size`` is global (over all ranks); ``patience`` counts
    evaluations without improvement before stopping early (0: never). Field models draw,
    per step, ``frames`` random frames of each trajectory (0: all) and ``points`` random grid
    points in each of them. ``precision = "bfloat16"`` runs the forward pass under autocast
    (weights, optimiser and validation stay float32): on CPUs with AVX512-BF16 a step of the
    128-wide LDNet decoder is ~2x faster. ``clip_grad_norm`` (None: off) rescales each
    step's gradient, over all trained parameters, to at most that 2-norm before Adam sees it:
    one exploding batch (an unstable latent rollout) otherwise fills Adam's second moments
    with a huge value that stalls every later step (measured: the sphere LDNet with a
    trainable Fourier matrix jumped from loss 0.44 to 2·10¹⁸ in one epoch and did not come
    back in 100). Each epoch's record holds the largest gradient norm seen before clipping
    (``grad_norm_max``), to choose the threshold."""

    epochs: int = 300
    batch_size: int = 8
    points: int = 1024
    frames: int = 0
    lr: float = 1e-3
    decay: Decay = field(default_factory=CosineDecay)
    patience: int = 10
    eval_every: int = 5
    precision: Literal["float32", "bfloat16"] = "float32"
    clip_grad_norm: float | None = field(default=None, metadata=ADDED_LATER)

    def validate(self, where: str) -> None:
        if self.clip_grad_norm is not None:
            positive(where, clip_grad_norm=self.clip_grad_norm)
        positive(
            where,
            epochs=self.epochs,
            batch_size=self.batch_size,
            points=self.points,
            lr=self.lr,
            eval_every=self.eval_every,
        )
        non_negative(where, patience=self.patience, frames=self.frames)


# --------------------------------------------------------------------------- objective


class Objective(nn.Module):
    """``forward(batch, gen)``: the loss share of this rank for training trajectories
    ``batch`` ``(b,)``; ``validate()``: the validation score (lower is better)."""

    def forward(self, batch: Tensor, gen: torch.Generator) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def validate(self) -> float:  # pragma: no cover
        raise NotImplementedError


def rank_share(batch: Tensor) -> tuple[Tensor, float]:
    """This rank's slice of a global batch and the factor ``W`` that makes DDP's gradient
    average a global mean (each rank's loss is ``W · Σ_local / N_global``)."""
    if not dist.is_initialized():
        return batch, 1.0
    rank, world = dist.get_rank(), dist.get_world_size()
    return batch.tensor_split(world)[rank], float(world)


@dataclass
class StageResult:
    """Outcome of :func:`train_stage`."""

    epochs_run: int
    best_score: float
    best_epoch: int
    history: list[dict[str, float]]
    seconds: float
    stopped_early: bool


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush denormal floats to zero inside the block (CPU). Early in training, gradients
    and Adam moments pass through denormal magnitudes, where CPU arithmetic is 10-100x
    slower (measured: a 128-wide LDNet step took 7 s instead of 0.5 s); the flush changes
    results only below ~1e-38. Restores the default (off) afterwards."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@flush_denormals()
def train_stage(
    objective: Objective,
    params: list[nn.Parameter],
    n_train: int,
    stage: StageConfig,
    seed: int,
    state_dir: Path,
    name: str,
    fingerprint: dict[str, Any],
    progress: bool = True,
    on_epoch_end: Callable[[int], None] | None = None,
    log: Callable[[str, dict[str, float]], None] | None = None,
    baseline: float | None = None,
) -> StageResult:
    """Train ``params`` of ``objective`` with Adam for one stage, resuming from
    ``state_dir/name.json`` when it exists.

    ``fingerprint`` (config, data) must equal the one stored with a resumed state, or the
    directory holds another run: that is refused. ``on_epoch_end(epoch)`` is called after
    each saved epoch (tests interrupt there); ``log(name, record)`` receives each epoch's
    record (loss, learning rate, validation score) on rank 0, e.g. :func:`tensorboard_log`.
    ``baseline`` is the validation score of the starting weights (e.g. the previous stage's
    best): they are returned unless an evaluation beats it (``best_epoch = 0``), so a stage
    never hands back weights that validate worse than those it was given.
    """
    model = objective
    if dist.is_initialized():
        model = nn.parallel.DistributedDataParallel(objective)  # type: ignore[assignment]
    opt = torch.optim.Adam(params, lr=stage.lr)
    gen = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    best, best_epoch, best_state, start, spent = math.inf, -1, None, 0, 0.0
    resumed = _load_state(state_dir, name, fingerprint)
    if resumed is None and baseline is not None:
        best, best_epoch, best_state = baseline, 0, _snapshot(objective)
    if resumed is not None:
        tensors, meta = resumed
        load_module_state(objective, unprefixed("model", tensors), "saved training state")
        restore_optimizer(opt, unprefixed("opt", tensors), meta["optimizer"])
        gen.set_state(tensors["rng"])
        best_state = unprefixed("best", tensors) or None
        start, best, best_epoch = meta["epoch"], meta["best_score"], meta["best_epoch"]
        history, spent = meta["history"], meta["seconds"]
    t0 = time.perf_counter() - spent
    decay = stage.decay
    device, low_precision = params[0].device.type, stage.precision == "bfloat16"
    bar = tqdm(
        range(start, stage.epochs),
        disable=not progress or not is_rank0(),
        desc=name,
        initial=start,
        total=stage.epochs,
    )
    stopped, warned = _patience_exhausted(history, best_epoch, stage), False
    for epoch in bar:
        if stopped:
            break
        for group in opt.param_groups:
            group["lr"] = stage.lr * decay.factor(epoch, stage.epochs)
        objective.train()
        order = torch.randperm(n_train, generator=gen)
        total, grad_norm = 0.0, 0.0
        for batch in order.split(stage.batch_size):
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device, torch.bfloat16, enabled=low_precision):
                loss = model(batch, gen)
            if not bool(torch.isfinite(loss)):
                # Stop before the step: the saved state of the last epoch stays usable.
                hint = " or use float32 precision" if low_precision else ""
                raise TrainingDivergence(
                    f"{name}: the training loss became {float(loss.detach())} in epoch "
                    f"{epoch + 1}; lower the learning rate (lr {stage.lr:g}){hint}"
                )
            loss.backward()
            norm = nn.utils.clip_grad_norm_(params, stage.clip_grad_norm or math.inf)
            grad_norm = max(grad_norm, float(norm))
            opt.step()
            total += float(loss.detach()) * len(batch)
        record: dict[str, float] = {
            "epoch": epoch + 1,
            "train_loss": total / n_train,
            "lr": opt.param_groups[0]["lr"],
            "grad_norm_max": grad_norm,
        }
        warned = warned or _warn_if_diverging(name, history, record, stage)
        if (epoch + 1) % stage.eval_every == 0 or epoch + 1 == stage.epochs:
            objective.eval()
            with torch.no_grad():
                score = objective.validate()
            record["val"] = score
            if score < best:
                best, best_epoch = score, epoch + 1
                best_state = _snapshot(objective)
        history.append(record)
        bar.set_postfix(loss=f"{record['train_loss']:.3g}", best=f"{best:.3g}")
        stopped = _patience_exhausted(history, best_epoch, stage)
        if is_rank0() and log is not None:
            log(name, record)
        if is_rank0():
            _save_state(
                state_dir,
                name,
                objective,
                opt,
                gen,
                best_state,
                epoch + 1,
                best,
                best_epoch,
                history,
                time.perf_counter() - t0,
                fingerprint,
            )
        barrier()
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
    bar.close()
    if best_state is not None:
        objective.load_state_dict(best_state)
    return StageResult(len(history), best, best_epoch, history, time.perf_counter() - t0, stopped)


def _snapshot(module: nn.Module) -> dict[str, Tensor]:
    """A detached copy of ``module``'s state (the best weights so far)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


#: An epoch's training loss this many times the lowest one before it counts as diverging.
DIVERGING = 1e3


def _warn_if_diverging(
    name: str, history: list[dict[str, float]], record: dict[str, float], stage: StageConfig
) -> bool:
    """Warn (on rank 0) when the epoch's training loss is :data:`DIVERGING` times the lowest
    earlier one, and say whether it did: training goes on, and early stopping still returns
    the best validated weights, but the run is likely wasted. A ratio says nothing about a
    loss that can be negative (e.g. ``−w``): there the lowest must be positive to compare."""
    lowest = min((r["train_loss"] for r in history), default=math.inf)
    if not is_rank0() or not 0 < lowest or not record["train_loss"] > DIVERGING * lowest:
        return False
    hint = (
        f"set clip_grad_norm (largest gradient norm this epoch {record['grad_norm_max']:.3g})"
        if stage.clip_grad_norm is None
        else f"lower clip_grad_norm ({stage.clip_grad_norm:g}) or the learning rate"
    )
    warnings.warn(
        f"{name}: training loss {record['train_loss']:.3g} in epoch {int(record['epoch'])} "
        f"is over {DIVERGING:g}x its lowest ({lowest:.3g}); the run is diverging: {hint}",
        TrainingWarning,
        stacklevel=2,
    )
    return True


def _patience_exhausted(
    history: list[dict[str, float]], best_epoch: int, stage: StageConfig
) -> bool:
    if not stage.patience:
        return False
    evals_since = sum(1 for r in history if "val" in r and r["epoch"] > best_epoch)
    return evals_since >= stage.patience


def _save_state(
    state_dir: Path,
    name: str,
    objective: nn.Module,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    best_state: dict[str, Tensor] | None,
    epoch: int,
    best: float,
    best_epoch: int,
    history: list[dict[str, float]],
    seconds: float,
    fingerprint: dict[str, Any],
) -> None:
    opt_tensors, opt_rest = optimizer_tensors(opt)
    tensors = {
        **prefixed("model", objective.state_dict()),
        **prefixed("opt", opt_tensors),
        **prefixed("best", best_state or {}),
        "rng": gen.get_state(),
    }
    meta = {
        "kind": "training-state",
        "fingerprint": fingerprint,
        "epoch": epoch,
        "best_score": best,
        "best_epoch": best_epoch,
        "history": history,
        "seconds": seconds,
        "optimizer": opt_rest,
    }
    save_checkpoint(state_dir, name, tensors, meta, version=epoch)


def _load_state(
    state_dir: Path, name: str, fingerprint: dict[str, Any]
) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
    if not (state_dir / f"{name}.json").exists():
        return None
    tensors, meta = load_checkpoint(state_dir, name, "training-state")
    if meta["fingerprint"] != fingerprint:
        raise DataError(
            f"{state_dir} holds the training of another configuration or dataset; "
            "use another --out or delete it"
        )
    return tensors, meta


def tensorboard_log(directory: str | Path) -> Callable[[str, dict[str, float]], None]:
    """A ``log`` callback writing each record as TensorBoard scalars ``name/key`` under
    ``directory`` (needs the optional ``tensorboard`` package)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "TensorBoard logging needs the tensorboard package: pip install tensorboard"
        ) from None
    writer = SummaryWriter(str(directory))

    def log(name: str, record: dict[str, float]) -> None:
        step = int(record["epoch"])
        for key, value in record.items():
            if key != "epoch":
                writer.add_scalar(f"{name}/{key}", value, step)
        writer.flush()

    return log
