"""VAE baselines trained through the library: the loss falls, scores are reproduced from the
saved checkpoint, and bad settings are one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from latentda.data import open_dataset
from latentda.data.splits import load_split
from latentda.errors import ConfigError
from latentda.surrogates.sensing import Geometry
from latentda.surrogates.train_vae import frame_data, load_vae, score_vae, train_vae, vae_config

TINY = {
    "model": {"latent_dim": 16, "levels": 2, "conv_widths": [16, 32], "obs_hidden": 32},
    "dynamics": {"hidden": 32},
    "sensors": {"layout": {"ny": 4, "nx": 4}},
    "stage": {"epochs": 30, "batch_size": 16, "lr": 3e-3, "eval_every": 10},
    "dyn_stage": {"epochs": 60, "batch_size": 4, "eval_every": 20},
}


@pytest.fixture(scope="module")
def trained(kolmo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vae")
    train_vae(open_dataset(kolmo_store), out, vae_config(TINY), progress=False)
    return out


def test_training_reduces_both_losses(trained: Path) -> None:
    for name in ("vae", "vae_dyn"):
        hist = json.loads((trained / "state" / f"{name}.json").read_text())["history"]
        # 30 VAE epochs / 60 VAE-dyn epochs (a few seconds): each loss falls at least 4x.
        assert hist[-1]["train_loss"] < hist[0]["train_loss"] / 4, (name, hist[0], hist[-1])
    m = json.loads((trained / "metrics.json").read_text())
    assert m["averaged_over"] == {"trajectories": 3, "frames": 10, "split": "test"}
    for key in ("test_rel_rmse", "test_rel_rmse_obs", "test_rel_rmse_dyn"):
        assert 0 < m[key] < 1, key


def test_checkpoint_reproduces_the_test_score(trained: Path, kolmo_store: Path) -> None:
    vae, dyn, norm, meta = load_vae(trained)
    ds = open_dataset(kolmo_store)
    geo = Geometry(ds, vae_config(TINY).sensors, 0)
    test = frame_data(ds, "test", norm, geo)
    assert len(test.fields) == len(load_split(ds, "test"))
    m = json.loads((trained / "metrics.json").read_text())
    assert float(score_vae(vae, test, norm).mean()) == pytest.approx(m["test_rel_rmse"], rel=1e-6)
    assert dyn.config.latent_dim == 16 and len(meta["points"]) == 16


def test_bad_settings() -> None:
    with pytest.raises(ConfigError, match="vae.model.height is fixed by the data"):
        vae_config({"model": {"height": 3}})
    with pytest.raises(ConfigError, match="vae.dynamics: unknown key 'width'"):
        vae_config({"dynamics": {"width": 3}})
    res = subprocess.run(
        [
            str(Path(sys.executable).parent / "latentda"),
            "train",
            "vae",
            "--data",
            "x.zarr",
            "--out",
            "o",
            "--set",
            "model.latent_dim=0",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "latent_dim" in lines[0], res.stderr
