"""The tests' tiny Kolmogorov store and surrogate: one recipe, used by the ``kolmo_store``
and ``surrogate`` fixtures (``tests/conftest.py``) and by
``benchmarks/field_smoothers_tiny.py``, which loads this file by path to measure on the
same store and surrogate."""

from pathlib import Path

import xarray as xr

from latentda.data import generate_dataset
from latentda.surrogates.train_encoder import encoder_config, train_encoder
from latentda.surrogates.train_ldnet import train_config, train_ldnet
from latentda.systems import field_system


def make_kolmo_store(path: Path) -> Path:
    """A real Kolmogorov store at ``path``: 16², 10 frames, 12 trajectories (7/2/3
    train/val/test), seed 3; returns ``path``."""
    system = field_system("kolmogorov", "ci", n=16, n_frames=10)
    generate_dataset(path, system, 12, seed=3, progress=False)
    return path


def train_tiny_surrogate(ds: xr.Dataset, ldnet_dir: Path, encoder_dir: Path) -> None:
    """~12 s: a tiny LDNet (``d_s = 4``, width 32) into ``ldnet_dir`` and a fixed-order
    encoder for 4×4 regular sensors at 10 % noise into ``encoder_dir``, trained on ``ds``
    (load both with :meth:`~latentda.filters.ldensf.LatentSurrogate.load`).

    On :func:`make_kolmo_store`'s store the LDNet resolves the Reynolds dependence (test
    rel. RMSE ≈ 0.09 with the true parameter).
    """
    model = {"latent_dim": 4, "recon_width": 32, "recon_blocks": 2, "fourier_features": 16}
    stage1 = {"epochs": 300, "batch_size": 2, "points": 128, "frames": 5, "lr": 2e-2}
    cfg = train_config(
        {
            "model": {**model, "dyn_width": 32},
            "stage1": {**stage1, "eval_every": 50},
            "stage2": {"epochs": 2, "batch_size": 3, "points": 128, "eval_every": 2},
        }
    )
    train_ldnet(ds, ldnet_dir, cfg, progress=False)
    ecfg = encoder_config(
        {
            "model": {"mode": "fixed", "hidden": 32, "embed": 16},
            "sensors": {"layout": {"name": "regular", "ny": 4, "nx": 4}, "noise_level": 0.1},
            "stage": {"epochs": 100, "batch_size": 3, "eval_every": 10, "lr": 3e-3},
        }
    )
    train_encoder(ds, ldnet_dir, encoder_dir, ecfg, progress=False)
