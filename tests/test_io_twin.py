"""Atomic writes, missing data in the cycle, divergence detection, initial ensembles."""

from pathlib import Path

import pytest
import torch

from latentda.errors import FilterDivergence
from latentda.experiments import twin_config
from latentda.experiments.initial import Climatology, Gaussian
from latentda.io import atomic_write, write_json
from latentda.systems import Lorenz96

BASE = {
    "system": {"name": "lorenz96", "dim": 40},
    "observations": {"operator": "subset", "stride": 2, "noise_std": 1.0, "every": 2},
    "method": {"name": "letkf", "ensemble_size": 16, "inflation": 1.05, "localization_radius": 3},
    "cycles": 40,
    "burn_in": 10,
    "seed": 1,
}


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "m.json"
    write_json(dest, {"a": 1})

    def broken(tmp: Path) -> None:
        tmp.write_text('{"half": ')
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(dest, broken)
    assert dest.read_text().strip().replace("\n", "").replace(" ", "") == '{"a":1}'
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_missing_readings_are_assimilated_without_nan() -> None:
    cfg = twin_config({**BASE, "observations": {**BASE["observations"], "missing": 0.4}})
    result = cfg.build().run()
    obs = result.data.obs
    frac = float(torch.isnan(obs).double().mean())
    assert 0.3 < frac < 0.5
    assert torch.isfinite(result.mean_a).all()
    assert result.time_means()["rmse_a"] < result.time_means()["rmse_f"]


def test_every_method_runs_on_the_same_data() -> None:
    data = None
    for method in (
        {"name": "enkf", "variant": "sqrt", "ensemble_size": 16, "inflation": 1.05},
        {"name": "enkf", "variant": "stochastic", "ensemble_size": 16, "inflation": 1.1},
        {"name": "letkf", "ensemble_size": 16, "inflation": 1.05, "localization_radius": 3},
        {"name": "ensf", "ensemble_size": 16, "steps": 20, "eps_beta": 0.1},
    ):
        exp = twin_config({**BASE, "method": method}).build()
        result = exp.run(data=data)
        if data is not None:
            assert result.data is data
        data = result.data
        assert torch.isfinite(result.scores["rmse_a"]).all()


class _Exploding:
    def analysis(self, ensemble, y, observer, gen):  # noqa: ANN001, ANN201
        return ensemble * float("nan") if observer is not None and y.shape[0] else ensemble


def test_divergence_names_the_cycle() -> None:
    exp = twin_config(BASE).build()
    exp.filter = _Exploding()
    with pytest.raises(FilterDivergence, match="cycle 1 of 40"):
        exp.run()


def test_initial_ensembles_ignore_the_truth() -> None:
    model = Lorenz96(dim=40)
    truth = torch.full((40,), 100.0, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    E = Gaussian(0.0, 1.0).sample(truth, 500, model, g)
    assert abs(float(E.mean())) < 0.05
    C = Climatology(spinup=200, spacing=20).sample(truth, 30, model, g)
    assert C.shape == (30, 40)
    assert abs(float(C.mean()) - 2.3) < 0.6 and float(C.std()) > 2.5
