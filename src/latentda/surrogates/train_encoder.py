"""Training an observation encoder on the latent trajectories of a trained LDNet (DESIGN 5.2).

Targets: the LDNet latents rolled out with the true parameters (a learned-start LDNet uses
its learned ``s_0`` on training trajectories and fits ``s_0`` to frame 0 elsewhere), and the
true normalised parameters. Inputs: readings of the normalised fields at the sensors, with
fresh Gaussian noise of the configured level in every epoch (the test noise model), optional
random missing readings and, for the location-aware encoder, optional fresh random layouts.
After training, the latent-observation noise of the filter is estimated per output dimension
as the standard deviation of the encoder's residuals on the validation split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import xarray as xr
from torch import Tensor

from latentda.data.distributed import is_rank0
from latentda.data.splits import dataset_info, grid_coords, load_split, unit_coords
from latentda.errors import ConfigError, DataError
from latentda.io import write_json
from latentda.observations.sensors import RandomLayout, SensorConfig
from latentda.schema import non_negative, parse, to_dict
from latentda.surrogates.checkpoint import load_checkpoint, load_module_state, save_checkpoint
from latentda.surrogates.encoder import EncoderConfig, build_encoder
from latentda.surrogates.sensing import Geometry, noisy
from latentda.surrogates.train_ldnet import LDNetRun, PreparedSplit, load_ldnet, start_latents
from latentda.surrogates.training import Objective, StageConfig, rank_share, train_stage

KIND = "encoder"


@dataclass
class EncoderTrainConfig:
    """Everything ``latentda train encoder`` reads from its YAML (all keys optional)."""

    model: EncoderConfig = field(default_factory=EncoderConfig)
    sensors: SensorConfig = field(default_factory=SensorConfig)
    stage: StageConfig = field(
        default_factory=lambda: StageConfig(epochs=200, batch_size=16, lr=1e-3)
    )
    #: Fraction of readings dropped (NaN) at random in training.
    drop_rate: float = 0.0
    #: Location-aware only: train on a fresh random layout of this many sensors per batch
    #: (0: always the configured layout).
    random_layouts: int = 0
    seed: int = 0

    def validate(self, where: str) -> None:
        non_negative(where, drop_rate=self.drop_rate, random_layouts=self.random_layouts)
        if self.drop_rate >= 1:
            raise ConfigError(f"{where}.drop_rate must be < 1, got {self.drop_rate}")
        if self.random_layouts and self.model.mode != "location":
            raise ConfigError(f"{where}.random_layouts needs model.mode: location")


def encoder_config(data: dict[str, Any] | None) -> EncoderTrainConfig:
    """Validate a mapping into :class:`EncoderTrainConfig`."""
    return parse(EncoderTrainConfig, data or {}, "encoder")


@dataclass(frozen=True)
class Sequences:
    """One split: normalised fields at observed frames ``(n, T_o, C, H, W)``, clean readings
    ``(n, T_o, S, C)`` and targets ``(n, T_o, d_s + p)``."""

    fields: Tensor
    readings: Tensor
    targets: Tensor


def prepare(ds: xr.Dataset, run: LDNetRun, geo: Geometry, every: int) -> dict[str, Sequences]:
    """Readings and targets of the three splits at frames ``0, every, 2·every, …``."""
    coords = grid_coords(ds)
    fit_steps = run.meta["training"]["fit_steps"]
    out = {}
    for name in ("train", "val", "test"):
        split = PreparedSplit.build(load_split(ds, name), run.normaliser)
        u, n_frames = split.u, split.fields.shape[1]
        with torch.no_grad():
            s0 = start_latents(run.model, split, coords, fit_steps, training=name == "train")
            s = run.model.rollout(u, n_frames, s0=s0)
        targets = torch.cat([s, u[:, None, :].expand(-1, n_frames, -1)], dim=-1)
        z = split.fields.unflatten(-1, split.raw.shape[-2:])[:, ::every]
        out[name] = Sequences(z, geo.read(z), targets[:, ::every].contiguous())
    return out


class EncoderLoss(Objective):
    """MSE of standardised targets for training trajectories ``batch``; every random draw
    (noise, missing readings, layouts) is made for the whole global batch on every rank."""

    def __init__(
        self,
        encoder: torch.nn.Module,
        data: dict[str, Sequences],
        geo: Geometry,
        config: EncoderTrainConfig,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self._data, self._geo, self._cfg = data, geo, config
        val_gen = torch.Generator().manual_seed(config.seed + 11)
        v = data["val"]
        self.val_readings = noisy(v.readings, config.sensors.noise_level, 0.0, val_gen)

    def forward(self, batch: Tensor, gen: torch.Generator) -> Tensor:
        cfg, train = self._cfg, self._data["train"]
        if cfg.random_layouts:
            layout = RandomLayout(count=cfg.random_layouts)
            pts = layout.points(self._geo.axes, self._geo.periodic, gen)
            readings, loc = (
                self._geo.read(train.fields[batch], pts),
                unit_coords(pts, self._geo.axes),
            )
        else:
            readings, loc = train.readings[batch], self._geo.unit
        readings = noisy(readings, cfg.sensors.noise_level, cfg.drop_rate, gen)
        local, scale = rank_share(torch.arange(len(batch)))
        out, _ = self.encoder(readings[local], loc)
        std = self.encoder.target_std
        err = (((out - train.targets[batch][local]) / std) ** 2).sum()
        return err * (scale / (len(batch) * out.shape[1] * out.shape[2]))

    def validate(self) -> float:
        v = self._data["val"]
        out, _ = self.encoder(self.val_readings, self._geo.unit)
        return float((((out - v.targets) / self.encoder.target_std) ** 2).mean())


def relative_errors(out: Tensor, targets: Tensor, run: LDNetRun, d_s: int) -> dict[str, float]:
    """Relative errors of ``ŝ`` (per frame ``‖ŝ − s‖/‖s‖``, mean over frames and trajectories)
    and of ``û`` in physical units (``|û − u|/|u|`` per parameter, mean), over all frames and
    at the last one."""
    s_err = (out[..., :d_s] - targets[..., :d_s]).norm(dim=-1) / targets[..., :d_s].norm(dim=-1)
    u_hat = run.normaliser.denormalise_params(out[..., d_s:].double())
    u_true = run.normaliser.denormalise_params(targets[..., d_s:].double())
    u_err = ((u_hat - u_true).abs() / u_true.abs().clamp(min=1e-12)).mean(-1)
    return {
        "latent_rel_error": float(s_err.mean()),
        "latent_rel_error_final": float(s_err[:, -1].mean()),
        "param_rel_error": float(u_err.mean()),
        "param_rel_error_final": float(u_err[:, -1].mean()),
    }


def train_encoder(
    ds: xr.Dataset,
    ldnet_dir: str | Path,
    out: str | Path,
    config: EncoderTrainConfig,
    progress: bool = True,
    on_epoch_end: Any = None,
    log: Any = None,
) -> dict[str, Any]:
    """Train an encoder for the LDNet in ``ldnet_dir``; writes ``out/encoder.{json,
    safetensors}`` and ``out/metrics.json``; resumes from ``out/state``."""
    out = Path(out)
    run = load_ldnet(ldnet_dir, ds)
    info = dataset_info(ds)
    geo = Geometry(ds, config.sensors, config.seed)
    data = prepare(ds, run, geo, config.sensors.every)
    d_s = run.model.config.latent_dim
    n_out = data["train"].targets.shape[-1]
    enc = build_encoder(config.model, geo.points.shape[0], len(info["channels"]), n_out)
    flat = data["train"].targets.flatten(0, 1)
    enc.target_mean.copy_(flat.mean(0))
    enc.target_std.copy_(flat.std(0).clamp(min=1e-6))
    ldnet_hash = _ldnet_hash(ldnet_dir)
    fp = {"config": to_dict(config), "data": info["fingerprint"], "ldnet": ldnet_hash}
    objective = EncoderLoss(enc, data, geo, config)
    result = train_stage(
        objective,
        list(enc.parameters()),
        len(data["train"].targets),
        config.stage,
        config.seed,
        out / "state",
        "encoder",
        fp,
        progress,
        on_epoch_end,
        log,
    )
    enc.eval()
    with torch.no_grad():
        v_out, _ = enc(objective.val_readings, geo.unit)
        enc.noise_std.copy_((v_out - data["val"].targets).flatten(0, 1).std(0))
        test = data["test"]
        t_read = noisy(
            test.readings,
            config.sensors.noise_level,
            0.0,
            torch.Generator().manual_seed(config.seed + 13),
        )
        t_out, _ = enc(t_read, geo.unit)
    metrics = {
        **relative_errors(t_out, test.targets, run, d_s),
        "averaged_over": {
            "trajectories": int(test.targets.shape[0]),
            "frames": int(test.targets.shape[1]),
            "split": "test",
        },
        "mode": config.model.mode,
        "sensors": int(geo.points.shape[0]),
        "noise_level": config.sensors.noise_level,
        "latent_noise_std": enc.noise_std.tolist(),
        "train_time_s": result.seconds,
        "epochs": result.epochs_run,
        "parameters": sum(p.numel() for p in enc.parameters()),
        "config": to_dict(config),
    }
    meta = {
        "kind": KIND,
        "config": to_dict(config.model),
        "dims": {
            "n_sensors": int(geo.points.shape[0]),
            "n_channels": len(info["channels"]),
            "n_out": n_out,
        },
        "latent_dim": d_s,
        "sensors": to_dict(config.sensors),
        "points": geo.points.tolist(),
        "ldnet": ldnet_hash,
        "data": info,
    }
    if is_rank0():
        save_checkpoint(out, KIND, enc.state_dict(), meta)
        write_json(out / "metrics.json", metrics)
    return metrics


def _ldnet_hash(directory: str | Path) -> str:
    return hashlib.sha256((Path(directory) / "ldnet.json").read_bytes()).hexdigest()[:16]


def load_encoder(
    directory: str | Path, ldnet_dir: str | Path | None = None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load a trained encoder; with ``ldnet_dir``, refuse an encoder trained for another
    LDNet (its latent coordinates would mean something else)."""
    tensors, meta = load_checkpoint(directory, "encoder", KIND)
    cfg = parse(EncoderConfig, meta["config"], "encoder.model")
    enc = build_encoder(cfg, **meta["dims"])
    load_module_state(enc, tensors, f"checkpoint {directory}")
    enc.eval()
    if ldnet_dir is not None and _ldnet_hash(ldnet_dir) != meta["ldnet"]:
        raise DataError(f"encoder {directory} was trained for another LDNet than {ldnet_dir}")
    return enc, meta
