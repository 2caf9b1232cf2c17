"""Field twin experiment: readings carry the stated noise and gaps, scores take exact values on
constructed ensembles, and LD-EnSF on a stored Kolmogorov test trajectory beats the same prior
ensemble left without observations, reproducibly."""

from pathlib import Path

import pytest
import torch
import xarray as xr

from latentda.data import open_dataset
from latentda.data.normalise import Normaliser
from latentda.errors import DataError
from latentda.experiments.field_twin import observe, run_ldensf, score, stored_trajectory
from latentda.filters.ldensf import LatentSurrogate, LDEnSF
from latentda.observations.sensors import RegularLayout, SensorConfig
from latentda.surrogates.sensing import Geometry

NOISE = 0.1  # the level the conftest encoder was trained with


def _normaliser(std: list[float]) -> Normaliser:
    return Normaliser(
        channel_mean=torch.tensor([1.0, -3.0], dtype=torch.float64),
        channel_std=torch.tensor(std, dtype=torch.float64),
        param_low=torch.tensor([1.0], dtype=torch.float64),
        param_high=torch.tensor([2.0], dtype=torch.float64),
    )


def test_observe_noise_schedule_and_gaps(kolmo_store: Path) -> None:
    ds = open_dataset(kolmo_store)
    geo = Geometry(ds, SensorConfig(layout=RegularLayout(ny=4, nx=4)), seed=0)
    truth = torch.randn(600, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    norm, level, every, missing = _normaliser([2.0, 0.05]), 0.3, 3, 0.2
    y = observe(truth, geo, norm, level, every, missing, torch.Generator().manual_seed(1))
    assert y.shape == (600, 16, 2) and y.dtype == torch.float64
    frames = torch.arange(600) % every == 0
    assert torch.isnan(y[~frames]).all()
    # A missing reading blanks all channels of one sensor at one frame.
    gaps = torch.isnan(y[frames])
    assert torch.equal(gaps[..., 0], gaps[..., 1])
    # 200 frames × 16 sensors: the missing fraction's std is 0.007, tolerance 0.03.
    assert abs(float(gaps[..., 0].float().mean()) - missing) < 0.03
    # ~2560 residuals per channel: the sample std's relative std is 1.4 %, tolerance 5 %.
    resid = (y - geo.read(truth).double())[frames][~gaps].reshape(-1, 2)
    torch.testing.assert_close(resid.std(0), level * norm.channel_std, rtol=0.05, atol=0)
    assert resid.mean(0).abs().max() < 4 * level * norm.channel_std.max() / 2560**0.5
    same = observe(truth, geo, norm, level, every, missing, torch.Generator().manual_seed(1))
    torch.testing.assert_close(y, same, rtol=0, atol=0, equal_nan=True)
    with pytest.raises(DataError, match="every"):
        observe(truth, geo, norm, level, 0, missing, torch.Generator())


def test_score_perfect_and_offset_ensembles() -> None:
    truth = torch.randn(4, 2, 5, 6, generator=torch.Generator().manual_seed(0))
    u = torch.tensor([2.0, -0.5], dtype=torch.float64)
    perfect = score(truth[:, None].expand(-1, 3, -1, -1, -1), truth, u.expand(4, 3, 2), u)
    for name, value in {"rel_rmse": 0, "rmse": 0, "spread": 0, "crps": 0}.items():
        assert torch.equal(perfect[name], torch.full((4,), float(value), dtype=torch.float64))
    assert (perfect["coverage90"] == 1).all() and (perfect["param_rel_error"] == 0).all()
    # Two members at truth + c ± a: the mean is off by c everywhere, the spread is a·√2.
    c, a = 0.25, 0.5
    members = truth[:, None] + c + torch.tensor([a, -a])[None, :, None, None, None]
    params = torch.stack([u * 1.1, u * 1.3])[None].expand(4, -1, -1)  # mean off by 20 %
    # An iterator of frames scores like the stacked tensor (one frame in memory at a time).
    got = score(iter(members), truth, params, u)
    d = truth[0].numel()
    expected = c * d**0.5 / truth.double().flatten(1).norm(dim=1)
    torch.testing.assert_close(got["rel_rmse"], expected)
    torch.testing.assert_close(got["rmse"], torch.full((4,), c, dtype=torch.float64))
    torch.testing.assert_close(got["spread"], torch.full((4,), a * 2**0.5, dtype=torch.float64))
    torch.testing.assert_close(got["param_rel_error"], torch.full((4,), 0.2, dtype=torch.float64))
    # The truth lies outside [c − a, c + a]'s central 90 % ([c − 0.9a, c + 0.9a]) iff c > 0.9a.
    assert (got["coverage90"] == 1).all()
    with pytest.raises(DataError, match="3 ensemble frames"):
        score(members[:3], truth, params, u)


@pytest.fixture(scope="module")
def kolmo(kolmo_store: Path) -> xr.Dataset:
    return open_dataset(kolmo_store)


def test_ldensf_beats_no_assimilation(surrogate: LatentSurrogate, kolmo: xr.Dataset) -> None:
    filt = LDEnSF()
    ld, ref = [], []
    for i in range(3):  # the whole test split of the tiny store
        res = run_ldensf(surrogate, kolmo, i, filt, NOISE, seed=0)
        free = run_ldensf(surrogate, kolmo, i, filt, NOISE, seed=0, assimilate=False)
        assert (res.n_frames, res.n_observed, res.n_sensors) == (10, 10, 16)
        assert free.n_observed == 0 and res.latent_dim == surrogate.state_dim
        assert all(v.shape == (10,) for v in res.scores.values())
        assert res.timings["filter_s"] > 0 and res.timings["reconstruction_s"] > 0
        assert free.timings["filter_s"] == 0
        ld.append(res.time_means()["rel_rmse"])
        ref.append(free.time_means()["rel_rmse"])
    # Observed (seed 0): 0.124 / 0.109 / 0.089 against 0.187 / 0.145 / 0.137 without
    # observations, ratio of the sums 0.69 (0.73, 0.75 at seeds 1, 2). Single trajectories
    # near the prior mean can tie (test_ldensf), hence the sum.
    assert sum(ld) < 0.85 * sum(ref), (ld, ref)
    _, true_params = stored_trajectory(kolmo, 2)
    assert true_params.shape == (1,)
    with pytest.raises(DataError, match="3 trajectories"):
        stored_trajectory(kolmo, 3)


def test_same_seed_same_result(surrogate: LatentSurrogate, kolmo: xr.Dataset) -> None:
    filt = LDEnSF(ensemble_size=8)
    a, b, c = (
        run_ldensf(surrogate, kolmo, 0, filt, NOISE, every=1, missing=0.2, seed=s)
        for s in (5, 5, 6)
    )
    assert all(torch.equal(a.scores[k], b.scores[k]) for k in a.scores)
    assert not torch.equal(a.scores["rel_rmse"], c.scores["rel_rmse"])
