"""Training the VAE baselines (DESIGN 5.3): the convolutional VAE with state and observation
encoders sharing one decoder (for Latent-EnSF), then VAE-dyn, a latent dynamics model on the
VAE's latent means (for the surrogate comparison).

Items: the VAE trains on frames (every frame of every training trajectory, per-channel
z-scored) with sensor readings at the configured layout and fresh noise each epoch; VAE-dyn
trains on whole latent trajectories, rolled out freely from frame 0's latent. Scores are
relative RMSEs in physical units over grid points and channels, per frame, averaged over
frames and test trajectories: ``vae`` = ``D(μ_x(x))`` against ``x``; ``vae_obs`` =
``D(μ_y(y))`` from noisy sensor readings; ``vae_dyn`` = decoded rollout from ``μ_x(x_0)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import xarray as xr
from torch import Tensor

from latentda.data.distributed import is_rank0
from latentda.data.normalise import Normaliser
from latentda.data.splits import dataset_info, forcing_clock, load_split, normaliser_for
from latentda.errors import ConfigError
from latentda.io import write_json
from latentda.metrics import relative_rmse
from latentda.observations.sensors import SensorConfig
from latentda.schema import parse, to_dict
from latentda.surrogates.checkpoint import (
    load_checkpoint,
    load_module_state,
    prefixed,
    save_checkpoint,
    unprefixed,
)
from latentda.surrogates.latent_dynamics import LatentDynamics, LatentDynamicsConfig, dyn_loss
from latentda.surrogates.layers import ForcingClock
from latentda.surrogates.sensing import Geometry, noisy
from latentda.surrogates.training import Objective, StageConfig, rank_share, train_stage
from latentda.surrogates.vae import ConvVAE, VAEConfig

KIND = "vae"
#: Keys of the model sections that come from the data, not from the user.
_VAE_DIMS = ("channels", "height", "width", "obs_dim")
_DYN_DIMS = ("latent_dim", "n_params")


@dataclass
class VAETrainConfig:
    """``latentda train vae`` settings; ``model`` and ``dynamics`` are checked against
    :class:`VAEConfig` and :class:`LatentDynamicsConfig` (the data fix their sizes)."""

    sensors: SensorConfig = field(default_factory=SensorConfig)
    stage: StageConfig = field(
        default_factory=lambda: StageConfig(epochs=30, batch_size=32, lr=1e-3, eval_every=2)
    )
    dyn_stage: StageConfig = field(
        default_factory=lambda: StageConfig(epochs=300, batch_size=8, lr=1e-3)
    )
    seed: int = 0
    model: dict[str, Any] = field(default_factory=dict)
    dynamics: dict[str, Any] = field(default_factory=dict)

    def vae(self, channels: int, height: int, width: int, obs_dim: int) -> VAEConfig:
        dims = {"channels": channels, "height": height, "width": width, "obs_dim": obs_dim}
        return VAEConfig.from_dict({**self.model, **dims}, "vae.model")

    def dyn(self, latent_dim: int, n_params: int) -> LatentDynamicsConfig:
        dims = {"latent_dim": latent_dim, "n_params": n_params}
        return LatentDynamicsConfig.from_dict({**self.dynamics, **dims}, "vae.dynamics")


def vae_config(data: dict[str, Any] | None) -> VAETrainConfig:
    """Validate a mapping into :class:`VAETrainConfig` (one-line errors naming the key)."""
    data = dict(data or {})
    sections = {}
    for key, dims in (("model", _VAE_DIMS), ("dynamics", _DYN_DIMS)):
        sub = data.pop(key, None) or {}
        if not isinstance(sub, dict):
            raise ConfigError(f"vae.{key}: expected a mapping, got {sub!r}")
        fixed = sorted(set(sub) & set(dims))
        if fixed:
            raise ConfigError(f"vae.{key}.{fixed[0]} is fixed by the data and cannot be set")
        sections[key] = sub
    cfg = parse(VAETrainConfig, data, "vae")
    cfg.model, cfg.dynamics = sections["model"], sections["dynamics"]
    cfg.vae(1, 8, 8, 1)  # unknown keys and bad values fail now, before any data is read
    cfg.dyn(1, 0)
    return cfg


@dataclass(frozen=True)
class FrameData:
    """One split: z-scored fields ``(n, T, C, H, W)``, clean readings ``(n, T, S·C)``,
    normalised parameters ``(n, p)`` and physical fields for scores."""

    fields: Tensor
    readings: Tensor
    u: Tensor
    raw: Tensor


def frame_data(ds: xr.Dataset, split: str, norm: Normaliser, geo: Geometry) -> FrameData:
    s = load_split(ds, split)
    z = norm.normalise_fields(s.fields.double()).float()
    return FrameData(z, geo.read(z).flatten(-2), norm.normalise_params(s.params).float(), s.fields)


class VAELoss(Objective):
    """The VAE loss of :meth:`ConvVAE.loss` on frames ``batch`` (flat ``trajectory·T + t``)."""

    def __init__(
        self,
        vae: ConvVAE,
        train: FrameData,
        val: FrameData,
        norm: Normaliser,
        level: float,
    ) -> None:
        super().__init__()
        self.vae = vae
        self._train, self._val, self._norm, self._level = train, val, norm, level

    def forward(self, batch: Tensor, gen: torch.Generator) -> Tensor:
        x = self._train.fields.flatten(0, 1)[batch]
        y = noisy(self._train.readings.flatten(0, 1)[batch], self._level, 0.0, gen)
        noise_gen = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
        local, world = rank_share(torch.arange(len(batch)))
        if len(local) == 0:  # more ranks than frames: take part in the gradient average
            return sum(p.sum() * 0 for p in self.vae.parameters())
        loss = self.vae.loss(x[local], y[local], noise_gen)["total"]
        return loss * (world * len(local) / len(batch))

    def validate(self) -> float:
        return float(score_vae(self.vae, self._val, self._norm).mean())


def score_vae(
    vae: ConvVAE, data: FrameData, norm: Normaliser, readings: Tensor | None = None
) -> Tensor:
    """Relative RMSE ``(n, T)`` of ``D(μ_x(x))`` (or of ``D(μ_y(y))`` given readings)."""
    n, t = data.fields.shape[:2]
    out = torch.empty(n, t, dtype=torch.float64)
    with torch.no_grad():
        for i in range(n):
            mu = (
                vae.encode_state(data.fields[i])[0]
                if readings is None
                else vae.encode_obs(readings[i])[0]
            )
            out[i] = _rel(vae.decode(mu), data.raw[i], norm)
    return out


def _rel(pred_z: Tensor, true: Tensor, norm: Normaliser) -> Tensor:
    pred = norm.denormalise_fields(pred_z.double())
    return relative_rmse(pred.flatten(1), true.double().flatten(1))


class DynLoss(Objective):
    """Free-rollout MSE of VAE-dyn on latent trajectories ``batch``."""

    def __init__(self, dyn: LatentDynamics, latents: Tensor, u: Tensor, val: Any) -> None:
        super().__init__()
        self.dyn = dyn
        self._z, self._u, self._val = latents, u, val

    def forward(self, batch: Tensor, gen: torch.Generator) -> Tensor:
        local, world = rank_share(batch)
        loss = dyn_loss(self.dyn, self._z[local], self._u[local])
        return loss * (world * len(local) / len(batch))

    def validate(self) -> float:
        return float(self._val())


def score_dyn(vae: ConvVAE, dyn: LatentDynamics, data: FrameData, norm: Normaliser) -> Tensor:
    """Relative RMSE ``(n, T)`` of the decoded VAE-dyn rollout from ``μ_x(x_0)``."""
    n, t = data.fields.shape[:2]
    out = torch.empty(n, t, dtype=torch.float64)
    with torch.no_grad():
        z0 = vae.encode_state(data.fields[:, 0])[0]
        z = dyn.rollout(z0, data.u, t - 1)
        for i in range(n):
            out[i] = _rel(vae.decode(z[i]), data.raw[i], norm)
    return out


def train_vae(
    ds: xr.Dataset,
    out: str | Path,
    config: VAETrainConfig,
    progress: bool = True,
    on_epoch_end: Any = None,
    log: Any = None,
) -> dict[str, Any]:
    """Train the VAE, then VAE-dyn; writes ``out/vae.{json,safetensors}`` and
    ``out/metrics.json``; resumes from ``out/state``."""
    out = Path(out)
    info = dataset_info(ds)
    train_set = load_split(ds, "train")
    norm = normaliser_for(ds, train_set)
    geo = Geometry(ds, config.sensors, config.seed)
    data = {s: frame_data(ds, s, norm, geo) for s in ("train", "val", "test")}
    n_train, t, c, h, w = data["train"].fields.shape
    vae = ConvVAE(config.vae(c, h, w, data["train"].readings.shape[-1]))
    fp = {"config": to_dict(config), "data": info["fingerprint"]}
    level = config.sensors.noise_level
    t0 = time.perf_counter()
    r_vae = train_stage(
        VAELoss(vae, data["train"], data["val"], norm, level),
        list(vae.parameters()),
        n_train * t,
        config.stage,
        config.seed,
        out / "state",
        "vae",
        {**fp, "stage": "vae"},
        progress,
        on_epoch_end,
        log,
    )
    vae.eval()
    with torch.no_grad():
        latents = torch.stack([vae.encode_state(x)[0] for x in data["train"].fields])
    clock = ForcingClock(*forcing_clock(info))
    dyn = LatentDynamics(config.dyn(latents.shape[-1], data["train"].u.shape[-1]), clock)

    def val_dyn() -> float:
        return float(score_dyn(vae, dyn, data["val"], norm).mean())

    r_dyn = train_stage(
        DynLoss(dyn, latents, data["train"].u, val_dyn),
        list(dyn.parameters()),
        n_train,
        config.dyn_stage,
        config.seed + 1,
        out / "state",
        "vae_dyn",
        {**fp, "stage": "vae_dyn"},
        progress,
        on_epoch_end,
        log,
    )
    test = data["test"]
    t_read = noisy(test.readings, level, 0.0, torch.Generator().manual_seed(config.seed + 13))
    scores = {
        "vae": score_vae(vae, test, norm),
        "vae_obs": score_vae(vae, test, norm, t_read),
        "vae_dyn": score_dyn(vae, dyn, test, norm),
    }
    metrics = {
        "test_rel_rmse": float(scores["vae"].mean()),
        "test_rel_rmse_obs": float(scores["vae_obs"].mean()),
        "test_rel_rmse_dyn": float(scores["vae_dyn"].mean()),
        "averaged_over": {"trajectories": int(test.fields.shape[0]), "frames": t, "split": "test"},
        "sensors": int(geo.points.shape[0]),
        "noise_level": level,
        # Stage seconds add up over resumed runs; this process's wall time may not.
        "train_time_s": r_vae.seconds + r_dyn.seconds,
        "stage_seconds": {"vae": r_vae.seconds, "vae_dyn": r_dyn.seconds},
        "wall_s": time.perf_counter() - t0,
        "parameters": sum(p.numel() for p in vae.parameters()),
        "parameters_dyn": sum(p.numel() for p in dyn.parameters()),
        "latent_dim": vae.config.latent_dim,
        "config": to_dict(config),
    }
    meta = {
        "kind": KIND,
        "vae": vae.config.to_dict(),
        "dynamics": dyn.config.to_dict(),
        "clock": dyn.clock.to_dict() if dyn.clock else None,
        "normaliser": norm.to_dict(),
        "sensors": to_dict(config.sensors),
        "points": geo.points.tolist(),
        "data": info,
    }
    if is_rank0():
        tensors = {**prefixed("vae", vae.state_dict()), **prefixed("dyn", dyn.state_dict())}
        save_checkpoint(out, KIND, tensors, meta)
        write_json(out / "metrics.json", metrics)
    return metrics


def load_vae(directory: str | Path) -> tuple[ConvVAE, LatentDynamics, Normaliser, dict]:
    """Load a trained VAE and its VAE-dyn (never unpickles)."""
    tensors, meta = load_checkpoint(directory, KIND, KIND)
    vae = ConvVAE(VAEConfig.from_dict(meta["vae"]))
    clock = ForcingClock.from_dict(meta.get("clock"))  # absent in checkpoints before clocks
    dyn = LatentDynamics(LatentDynamicsConfig.from_dict(meta["dynamics"]), clock)
    load_module_state(vae, unprefixed("vae", tensors), f"checkpoint {directory}")
    load_module_state(dyn, unprefixed("dyn", tensors), f"checkpoint {directory}")
    return vae.eval(), dyn.eval(), Normaliser.from_dict(meta["normaliser"]), meta
