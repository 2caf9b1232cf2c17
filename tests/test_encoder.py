"""Observation encoders: causality, sensor-order invariance, NaN = absent sensor, training
on a tiny LDNet with noise, the latent noise estimate, checkpoints and bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from latentda.data import open_dataset
from latentda.errors import DataError
from latentda.surrogates.encoder import EncoderConfig, FixedOrderEncoder, LocationAwareEncoder
from latentda.surrogates.train_encoder import encoder_config, load_encoder, train_encoder
from latentda.surrogates.train_ldnet import train_config, train_ldnet

BIN = Path(sys.executable).parent
CFG = EncoderConfig(hidden=16, embed=8, fourier_features=4)


def test_location_aware_is_invariant_to_sensor_order() -> None:
    enc = LocationAwareEncoder(CFG, n_channels=2, n_out=5)
    y = torch.randn(3, 6, 7, 2)
    loc = torch.rand(7, 2) * 2 - 1
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(0))
    a, _ = enc(y, loc)
    b, _ = enc(y[:, :, perm], loc[perm])
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_nan_sensor_is_an_absent_sensor() -> None:
    enc = LocationAwareEncoder(CFG, n_channels=2, n_out=5)
    y = torch.randn(2, 4, 5, 2)
    loc = torch.rand(5, 2) * 2 - 1
    failed = y.clone()
    failed[:, 2:, 3] = float("nan")  # sensor 3 fails from frame 2 on
    out, _ = enc(failed, loc)
    assert torch.isfinite(out).all()
    # Up to frame 1 nothing changed; from frame 2 the output is that of 4 sensors.
    full, _ = enc(y, loc)
    torch.testing.assert_close(out[:, :2], full[:, :2])
    keep = [0, 1, 2, 4]
    four, _ = enc(y[:, :, keep], loc[keep])
    step2, _ = enc(failed[:, :2], loc)
    _, state = enc(failed[:, :2], loc)
    rest, _ = enc(y[:, 2:][:, :, keep], loc[keep], state)
    torch.testing.assert_close(out[:, 2:], rest, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(out[:, 2:], full[:, 2:])
    torch.testing.assert_close(step2, out[:, :2])
    assert four.shape == out.shape
    # A moving layout: per-time coordinates (B, T, S, k) are accepted.
    moving = loc.expand(2, 4, 5, 2) + 0.01 * torch.arange(4.0)[None, :, None, None]
    assert enc(y, moving)[0].shape == (2, 4, 5)


def test_encoders_are_causal() -> None:
    for enc, loc in [
        (FixedOrderEncoder(CFG, 5, 2, 3), None),
        (LocationAwareEncoder(CFG, 2, 3), torch.rand(5, 2)),
    ]:
        y = torch.randn(1, 6, 5, 2)
        z = y.clone()
        z[:, 4:] += 1.0  # the future changes ...
        a, _ = enc(y, loc)
        b, _ = enc(z, loc)
        torch.testing.assert_close(a[:, :4], b[:, :4])  # ... the past estimates do not
        assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_fixed_order_handles_nan_and_refuses_other_layouts() -> None:
    enc = FixedOrderEncoder(CFG, 5, 2, 3)
    y = torch.randn(1, 3, 5, 2)
    y[0, 1, 2, 0] = float("nan")
    assert torch.isfinite(enc(y)[0]).all()
    with pytest.raises(ValueError, match="fixed order"):
        enc(torch.randn(1, 3, 6, 2))


@pytest.fixture(scope="module")
def ldnet_dir(kolmo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ldnet-for-encoder")
    cfg = train_config(
        {
            "model": {
                "latent_dim": 4,
                "recon_width": 32,
                "recon_blocks": 2,
                "fourier_features": 16,
                "dyn_width": 32,
            },
            "stage1": {"epochs": 20, "batch_size": 3, "points": 128, "eval_every": 10, "lr": 3e-3},
            "stage2": {"epochs": 2, "batch_size": 3, "points": 128, "eval_every": 2},
        }
    )
    train_ldnet(open_dataset(kolmo_store), out, cfg, progress=False)
    return out


@pytest.mark.parametrize("mode", ["fixed", "location"])
def test_training_learns_and_estimates_latent_noise(
    mode: str, kolmo_store: Path, ldnet_dir: Path, tmp_path: Path
) -> None:
    base = {
        "model": {"mode": mode, "hidden": 32, "embed": 16},
        "sensors": {"layout": {"name": "regular", "ny": 4, "nx": 4}, "noise_level": 0.1},
        "stage": {"epochs": 60, "batch_size": 3, "eval_every": 10, "lr": 3e-3},
    }
    ds = open_dataset(kolmo_store)
    m = train_encoder(ds, ldnet_dir, tmp_path, encoder_config(base), progress=False)
    hist = json.loads((tmp_path / "state" / "encoder.json").read_text())["history"]
    # 60 epochs (under a second): the standardised MSE at least halves in both modes.
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] / 2, (hist[0], hist[-1])
    assert m["averaged_over"] == {"trajectories": 3, "frames": 10, "split": "test"}
    sigma = torch.tensor(m["latent_noise_std"])
    assert sigma.shape == (5,) and (sigma > 0).all()  # 4 latent + 1 parameter
    enc, meta = load_encoder(tmp_path, ldnet_dir)
    torch.testing.assert_close(enc.noise_std, sigma)
    assert len(meta["points"]) == 16


def test_location_encoder_trains_on_random_layouts(
    kolmo_store: Path, ldnet_dir: Path, tmp_path: Path
) -> None:
    cfg = encoder_config(
        {
            "model": {"mode": "location", "hidden": 16, "embed": 8},
            "stage": {"epochs": 3, "batch_size": 4, "eval_every": 3},
            "random_layouts": 12,
            "drop_rate": 0.1,
        }
    )
    m = train_encoder(open_dataset(kolmo_store), ldnet_dir, tmp_path, cfg, progress=False)
    assert m["epochs"] == 3 and torch.isfinite(torch.tensor(m["latent_rel_error"]))


def test_bad_input(kolmo_store: Path, ldnet_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cases = [
        (["--ldnet", str(tmp_path / "none")], "no ldnet checkpoint"),
        (["--ldnet", str(ldnet_dir), "--set", "random_layouts=5"], "needs model.mode: location"),
        (["--ldnet", str(ldnet_dir), "--set", "sensors.layout.name=grid"], "unknown layout"),
    ]
    for extra, expected in cases:
        res = subprocess.run(
            [
                str(BIN / "latentda"),
                "train",
                "encoder",
                "--data",
                str(kolmo_store),
                "--out",
                str(tmp_path / "o"),
                *extra,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and expected in lines[0], res.stderr
    with pytest.raises(DataError, match="no encoder checkpoint"):
        load_encoder(tmp_path / "none")
