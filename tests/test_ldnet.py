"""LDNet: shapes, shifted start, training, stage 2 freezing, checkpoints, resume, DDP, bad
input, and the model-error estimate σ_m stored with (or recomputed for) a checkpoint, on a
tiny real Kolmogorov store."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from latentda.data import open_dataset
from latentda.data.splits import forcing_clock, grid_coords, load_split
from latentda.errors import DataError, TrainingDivergence
from latentda.filters.ldensf import LatentSurrogate
from latentda.surrogates.ldnet import ForcingClock, LDNet, LDNetConfig
from latentda.surrogates.train_ldnet import (
    PreparedSplit,
    ldnet_model_error,
    load_ldnet,
    model_error_std,
    random_points,
    train_config,
    train_ldnet,
)

TINY = {
    "model": {
        "latent_dim": 4,
        "recon_width": 32,
        "recon_blocks": 2,
        "fourier_features": 16,
        "fourier_scale": 1.0,
        "dyn_width": 32,
    },
    "stage1": {
        "epochs": 40,
        "batch_size": 3,
        "points": 128,
        "eval_every": 10,
        "lr": 3e-3,
        "patience": 0,
    },
    "stage2": {"epochs": 6, "batch_size": 3, "points": 256, "eval_every": 3, "lr": 1e-3},
}
BIN = Path(sys.executable).parent


def test_shapes_and_shifted_start() -> None:
    model = LDNet(LDNetConfig(latent_dim=5, latent_dt=0.3), n_params=2, n_channels=3)
    u = torch.rand(4, 2) * 2 - 1
    s = model.rollout(u, 7)
    assert s.shape == (4, 7, 5)
    # The latent before frame 0 is zero: s_0 = Δt·F(u, 0).
    expected = 0.3 * model.velocity(torch.zeros(4, 5), u)
    torch.testing.assert_close(s[:, 0], expected, rtol=0, atol=0)
    torch.testing.assert_close(s[:, 1], s[:, 0] + 0.3 * model.velocity(s[:, 0], u))
    xi = torch.rand(7, 11, 2) * 2 - 1  # per-frame points broadcast against (B, T, d_s)
    assert model.reconstruct(s, xi).shape == (4, 7, 11, 3)
    # Mesh-free: one point at a time gives the same values as a batch of points.
    one = model.reconstruct(s[0, 2], xi[2, 5:6])
    torch.testing.assert_close(one[0], model.reconstruct(s, xi)[0, 2, 5])


def test_forcing_clock_drives_the_dynamics() -> None:
    clock = ForcingClock(periods=(3.0, 126.0), start=9.0)
    model = LDNet(LDNetConfig(latent_dim=5, latent_dt=0.3), 2, 3, clock=clock)
    u = torch.rand(4, 2) * 2 - 1
    s = model.rollout(u, 7)

    # F sees [u, φ(k), s] with φ(k) = [cos, sin](2π(k₀ + k)/P); the shifted start steps from
    # zero at frame −1.
    def f(s: torch.Tensor, k: float) -> torch.Tensor:
        a = 2 * torch.pi * (9.0 + k) / torch.tensor([3.0, 126.0], dtype=torch.float64)
        phase = torch.cat([a.cos(), a.sin()]).float().expand(4, -1)
        return model.dynamics(torch.cat([u, phase, s], dim=-1))

    torch.testing.assert_close(s[:, 0], 0.3 * f(torch.zeros(4, 5), -1.0), rtol=0, atol=0)
    for k in range(6):
        torch.testing.assert_close(s[:, k + 1], s[:, k] + 0.3 * f(s[:, k], float(k)))
    # Only the phase enters: one full period of both clocks later, the same step.
    lcm = 126.0
    torch.testing.assert_close(model.step(s[:, 3], u, k=3.0), model.step(s[:, 3], u, k=3.0 + lcm))
    assert not torch.allclose(model.step(s[:, 3], u, k=3.0), model.step(s[:, 3], u, k=4.0))
    # Architecture round trip through the JSON dims, and the switch off.
    again = LDNet.from_dims(model.config, json.loads(json.dumps(model.dims())))
    assert again.clock == clock and again.dynamics[0].in_features == 2 + 4 + 5
    off = LDNet(LDNetConfig(latent_dim=5, forcing_inputs=False), 2, 3, clock=clock)
    assert off.clock is None and off.dims()["clock"] is None


def test_forcing_clock_of_a_store() -> None:
    """The sphere's source turns daily and swings over 42 days; frames are 8 h apart and
    frame 0 comes after a 3-day spin-up. Systems without a known forcing have no clock."""
    hour = 3600.0
    times = [72 * hour + 8 * hour * k for k in range(4)]
    sphere = {"forcing": True, "forcing_lon_period": 24 * hour, "forcing_lat_period": 1008 * hour}
    info = {"system": {"name": "sphere", **sphere}, "frame_times": times}
    assert forcing_clock(info) == ((3.0, 126.0), 9.0)
    info["system"]["forcing"] = False
    assert forcing_clock(info) == ((), 9.0)
    assert forcing_clock({"system": {"name": "kolmogorov"}, "frame_times": times}) == ((), 0.0)


def test_construction_does_not_touch_the_global_rng() -> None:
    torch.manual_seed(0)
    a = torch.rand(3)
    torch.manual_seed(0)
    LDNet(LDNetConfig(), n_params=1, n_channels=2)
    torch.testing.assert_close(torch.rand(3), a)


@pytest.fixture(scope="module")
def trained(kolmo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ldnet")
    train_ldnet(open_dataset(kolmo_store), out, train_config(TINY), progress=False)
    return out


def test_training_reduces_the_loss(trained: Path) -> None:
    history = json.loads((trained / "state" / "stage1.json").read_text())["history"]
    first, last = history[0]["train_loss"], history[-1]["train_loss"]
    # 40 epochs of 3 batches on 7 trajectories (about 2 s): the normalised MSE halves.
    assert last < first / 2, (first, last)
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["averaged_over"] == {"trajectories": 3, "frames": 10, "split": "test"}
    assert 0 < metrics["test_rel_rmse"] < 1
    assert metrics["parameters"] > 0 and metrics["train_time_s"] > 0


def test_diverging_training_stops_with_a_clear_error(kolmo_store: Path, tmp_path: Path) -> None:
    cfg = train_config({**TINY, "stage1": {**TINY["stage1"], "epochs": 5, "lr": 1e6}})
    with pytest.raises(TrainingDivergence, match=r"stage1: the training loss became .* epoch"):
        train_ldnet(open_dataset(kolmo_store), tmp_path, cfg, progress=False)
    # Nothing half-trained is published as a model.
    assert not (tmp_path / "ldnet.json").exists()


def test_bfloat16_autocast_trains_like_float32(
    trained: Path, kolmo_store: Path, tmp_path: Path
) -> None:
    cfg = train_config({**TINY, "stage1": {**TINY["stage1"], "precision": "bfloat16"}})
    train_ldnet(open_dataset(kolmo_store), tmp_path, cfg, progress=False)
    low = json.loads((tmp_path / "state" / "stage1.json").read_text())["history"]
    full = json.loads((trained / "state" / "stage1.json").read_text())["history"]
    # The same draws and weights: the first epoch differs by bf16 rounding only (the forward
    # really ran in bf16), well under 5 %; then the loss halves as in float32.
    first_low, first_full = low[0]["train_loss"], full[0]["train_loss"]
    assert first_low != first_full
    assert abs(first_low - first_full) < 0.05 * first_full, (first_low, first_full)
    assert low[-1]["train_loss"] < first_low / 2


def test_stage2_leaves_dynamics_bit_identical(kolmo_store: Path, tmp_path: Path) -> None:
    ds = open_dataset(kolmo_store)
    cfg = train_config({**TINY, "stage1": {**TINY["stage1"], "epochs": 5}})
    out = tmp_path / "a"
    train_ldnet(ds, out, cfg, progress=False)
    after1 = load_file(sorted((out / "state").glob("stage1-*.safetensors"))[-1])
    final = load_file(out / "ldnet.safetensors")
    dyn = [k for k in final if k.startswith("dynamics.")]
    assert dyn
    # Stage 1 ends on its best weights ('best.' in its state); stage 2 must not move them.
    for k in dyn:
        assert torch.equal(final[k], after1[f"best.model.{k}"]), k
    changed = [
        k
        for k in final
        if not k.startswith("dynamics.")
        and k != "features.B"
        and not torch.equal(final[k], after1[f"best.model.{k}"])
    ]
    assert changed, "stage 2 trained nothing"


def test_checkpoint_round_trip_gives_identical_outputs(trained: Path, kolmo_store: Path) -> None:
    run = load_ldnet(trained, open_dataset(kolmo_store))
    fresh = LDNet.from_dims(
        run.model.config, json.loads((trained / "ldnet.json").read_text())["dims"]
    )
    u = torch.tensor([[-0.5], [0.7]])
    xi = torch.rand(10, 9, 2) * 2 - 1
    out_a = run.model.reconstruct(run.model.rollout(u, 10), xi)
    assert not torch.equal(out_a, fresh.reconstruct(fresh.rollout(u, 10), xi))
    again = load_ldnet(trained)
    torch.testing.assert_close(
        again.model.reconstruct(again.model.rollout(u, 10), xi), out_a, rtol=0, atol=0
    )
    torch.testing.assert_close(run.normaliser.channel_std, again.normaliser.channel_std)


class Interrupt(Exception):
    pass


def test_resume_equals_uninterrupted(kolmo_store: Path, tmp_path: Path) -> None:
    ds = open_dataset(kolmo_store)
    cfg = train_config({**TINY, "stage1": {**TINY["stage1"], "epochs": 8, "eval_every": 2}})
    train_ldnet(ds, tmp_path / "whole", cfg, progress=False)

    def stop(epoch: int) -> None:
        if epoch == 5:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_ldnet(ds, tmp_path / "cut", cfg, progress=False, on_epoch_end=stop)
    assert not (tmp_path / "cut" / "ldnet.json").exists()
    train_ldnet(ds, tmp_path / "cut", cfg, progress=False)
    a = load_file(tmp_path / "whole" / "ldnet.safetensors")
    b = load_file(tmp_path / "cut" / "ldnet.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _hand_model_error(
    model: LDNet, split: PreparedSplit, coords: torch.Tensor, idx: list[torch.Tensor]
) -> torch.Tensor:
    """σ_m by explicit loops: trajectory by trajectory, frame by frame, channel by channel,
    decoding one frame's points ``idx[t]`` at a time (independent of the batched code)."""
    n, n_frames, n_channels, _ = split.fields.shape
    out = torch.zeros(n_frames, n_channels, dtype=torch.float64)
    with torch.no_grad():
        for t in range(n_frames):
            for c in range(n_channels):
                sq, count = 0.0, 0
                for i in range(n):
                    s = model.rollout(split.u[i : i + 1], n_frames)[0, t]  # (d_s,)
                    pred = model.reconstruct(s, coords[idx[t]])[:, c].double()  # (m,)
                    true = split.fields[i, t, c, idx[t]].double()
                    sq += float(((pred - true) ** 2).sum())
                    count += len(idx[t])
                out[t, c] = (sq / count) ** 0.5
    return out


def test_model_error_std_matches_a_hand_computation(trained: Path, kolmo_store: Path) -> None:
    """σ_m on the 2 validation trajectories, first 4 frames, against explicit loops: on
    all 256 grid points (the default 1024 exceeds the grid) and on 16 seeded points per
    frame. The networks run in float32 and the batched code decodes all frames at once, so
    the two differ by round-off: up to 3e-6 relative observed (a residual of ~0.08 from
    values ~1), asserted 1e-5."""
    ds = open_dataset(kolmo_store)
    run = load_ldnet(trained, ds)
    full = PreparedSplit.build(load_split(ds, "val"), run.normaliser)
    split = PreparedSplit(full.fields[:, :4], full.u, full.raw[:, :4])
    coords = grid_coords(ds)
    got = model_error_std(run.model, split, coords, None)
    assert got.shape == (4, 2) and got.dtype == torch.float64
    every = [torch.arange(coords.shape[0])] * 4
    torch.testing.assert_close(
        got, _hand_model_error(run.model, split, coords, every), rtol=1e-5, atol=0
    )
    few = model_error_std(run.model, split, coords, None, points=16, seed=5)
    idx = random_points(4, coords.shape[0], 16, torch.Generator().manual_seed(5))
    assert all(len(set(row.tolist())) == 16 for row in idx)  # distinct points per frame
    torch.testing.assert_close(
        few, _hand_model_error(run.model, split, coords, list(idx)), rtol=1e-5, atol=0
    )
    assert torch.equal(few, model_error_std(run.model, split, coords, None, points=16, seed=5))
    assert not torch.equal(few, got)
    # The LDNet misses the truth by a fraction of a z-score unit, not by nothing nor by all.
    assert bool((got > 0.01).all() and (got < 1).all()), got


def test_model_error_is_stored_and_recomputed_for_old_checkpoints(
    trained: Path, kolmo_store: Path, tmp_path: Path
) -> None:
    """A fresh checkpoint stores σ_m (T, C) with what it is averaged over; a copy without
    the key (a checkpoint trained before it existed) gets the same σ_m computed on load,
    bit for bit (same weights, points and arithmetic)."""
    ds = open_dataset(kolmo_store)
    doc = json.loads((trained / "ldnet.json").read_text())
    record = doc["model_error"]
    assert {k: record[k] for k in ("split", "trajectories", "frames", "points_per_frame")} == {
        "split": "val",
        "trajectories": 2,
        "frames": 10,
        "points_per_frame": 256,
    }
    stored = torch.tensor(record["std"], dtype=torch.float64)
    assert stored.shape == (10, 2)
    assert json.loads((trained / "metrics.json").read_text())["model_error"] == record
    run = load_ldnet(trained, ds)
    assert torch.equal(ldnet_model_error(run, ds), stored)
    old = tmp_path / "old"
    shutil.copytree(trained, old, ignore=shutil.ignore_patterns("state"))
    del doc["model_error"]
    (old / "ldnet.json").write_text(json.dumps(doc))
    recomputed = ldnet_model_error(load_ldnet(old, ds), ds)
    assert torch.equal(recomputed, stored), (recomputed - stored).abs().max()
    sur = LatentSurrogate.load(old, None, ds)
    assert sur.model_error is not None and torch.equal(sur.model_error, stored)


def test_learned_initial_latent_trains_and_evaluates(kolmo_store: Path, tmp_path: Path) -> None:
    cfg = train_config(
        {
            **TINY,
            "model": {**TINY["model"], "initial": "learned"},
            "stage1": {**TINY["stage1"], "epochs": 4},
            "fit_steps": 20,
        }
    )
    metrics = train_ldnet(open_dataset(kolmo_store), tmp_path, cfg, progress=False)
    assert np.isfinite(metrics["test_rel_rmse"])
    run = load_ldnet(tmp_path)
    assert run.model.initial_latents.shape == (7, 4)  # one per training trajectory
    # σ_m fits each validation s_0 to frame 0 (deterministic), so the on-load computation
    # for a checkpoint without the key gives the stored value.
    ds = open_dataset(kolmo_store)
    assert run.meta["model_error"]["initial_latent"] == "fitted to frame 0"
    stored = torch.tensor(run.meta["model_error"]["std"], dtype=torch.float64)
    del run.meta["model_error"]
    torch.testing.assert_close(ldnet_model_error(run, ds), stored, rtol=1e-6, atol=0)


def _cli(*args: str, torchrun: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    head = [str(BIN / "latentda")]
    if torchrun:
        head = [
            str(BIN / "torchrun"),
            "--standalone",
            f"--nproc_per_node={torchrun}",
            "-m",
            "latentda",
        ]
    return subprocess.run([*head, *args], capture_output=True, text=True, env=env, timeout=600)


def test_ddp_two_processes_match_one(kolmo_store: Path, tmp_path: Path) -> None:
    if not (BIN / "torchrun").exists():
        pytest.skip("torchrun not installed next to this interpreter")
    sets = [
        "--set",
        "stage1.epochs=3",
        "--set",
        "stage2.epochs=2",
        "--set",
        "stage1.batch_size=4",
        "--set",
        "stage2.batch_size=4",
        "--set",
        "model.recon_width=32",
    ]
    one = _cli(
        "train",
        "ldnet",
        "--data",
        str(kolmo_store),
        "--out",
        str(tmp_path / "one"),
        "--no-progress",
        *sets,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = _cli(
        "train",
        "ldnet",
        "--data",
        str(kolmo_store),
        "--out",
        str(tmp_path / "two"),
        "--no-progress",
        *sets,
        torchrun=2,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    a = load_file(tmp_path / "one" / "ldnet.safetensors")
    b = load_file(tmp_path / "two" / "ldnet.safetensors")
    # Same global batches and points; only the order of floating-point sums differs.
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)
    assert not torch.equal(
        a["head.weight"],
        LDNet(LDNetConfig(latent_dim=9, recon_width=32), 1, 2).head.weight.detach(),
    )


def test_bad_input_is_one_line_exit_2(kolmo_store: Path, trained: Path, tmp_path: Path) -> None:
    # NaN in training data: copy the store and poison one training trajectory.
    import shutil

    import zarr

    poisoned = tmp_path / "nan.zarr"
    shutil.copytree(kolmo_store, poisoned)
    g = zarr.open_group(str(poisoned), mode="r+")
    train_idx = int(np.flatnonzero(g["split"][:] == "train")[0])
    block = g["fields"][train_idx]
    block[3, 0, 2, 2] = np.nan
    g["fields"][train_idx] = block
    # A checkpoint of an incompatible format version.
    old = tmp_path / "old"
    shutil.copytree(trained, old)
    meta = json.loads((old / "ldnet.json").read_text())
    meta["format_version"] = 0
    (old / "ldnet.json").write_text(json.dumps(meta))
    cases = [
        (
            ["train", "ldnet", "--data", str(poisoned), "--out", str(tmp_path / "o1")],
            "NaN or Inf in the fields of trajectories",
        ),
        (
            [
                "train",
                "ldnet",
                "--data",
                str(kolmo_store),
                "--out",
                str(tmp_path / "o2"),
                "--set",
                "model.latent_dim=-1",
            ],
            "ldnet.model.latent_dim must be > 0",
        ),
        (
            [
                "train",
                "ldnet",
                "--data",
                str(kolmo_store),
                "--out",
                str(tmp_path / "o3"),
                "--set",
                "stage1.epoch=3",
            ],
            "unknown key 'epoch'",
        ),
        (["train", "ldnet", "--data", str(kolmo_store), "--out", "/proc/nope"], "cannot write"),
    ]
    for args, expected in cases:
        res = _cli(*args)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and expected in lines[0], (args, res.stderr)
    with pytest.raises(DataError, match="format version 0"):
        load_ldnet(old)
    with pytest.raises(DataError, match="no ldnet checkpoint"):
        load_ldnet(tmp_path / "missing")


def test_example_configs_parse() -> None:
    from latentda.experiments.config import load_yaml
    from latentda.surrogates.train_encoder import encoder_config

    root = Path(__file__).resolve().parents[1] / "examples"
    assert train_config(load_yaml(root / "ldnet_kolmogorov.yaml")).model.latent_dim == 9
    assert encoder_config(load_yaml(root / "encoder_kolmogorov.yaml")).model.mode == "location"


def test_missing_split_and_wrong_system(trained: Path, tmp_path: Path) -> None:
    from latentda.data import generate_dataset
    from latentda.systems import field_system

    two = tmp_path / "two.zarr"  # 2 trajectories: 1 train, 0 val, 1 test
    generate_dataset(two, field_system("kolmogorov", "ci", n=16, n_frames=3), 2, 0, progress=False)
    tsunami = tmp_path / "tsunami.zarr"
    generate_dataset(tsunami, field_system("tsunami", "ci", n=8, n_frames=3), 5, 0, progress=False)
    cases = [
        (
            ["train", "ldnet", "--data", str(two), "--out", str(tmp_path / "a")],
            "dataset has no 'val' trajectories",
        ),
        (
            [
                "train",
                "encoder",
                "--data",
                str(tsunami),
                "--ldnet",
                str(trained),
                "--out",
                str(tmp_path / "b"),
            ],
            "was trained on kolmogorov data",
        ),
    ]
    for args, expected in cases:
        res = _cli(*args)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and expected in lines[0], (args, res.stderr)


def test_partial_sections_keep_their_defaults() -> None:
    cfg = train_config({"stage1": {"epochs": 7}, "stage2": {"decay": {"name": "step"}}})
    default = train_config({})
    assert cfg.stage1.epochs == 7 and cfg.stage1.points == default.stage1.points == 256
    assert cfg.stage2.points == default.stage2.points and cfg.stage2.decay.name == "step"
