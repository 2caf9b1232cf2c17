"""The shared training loop: gradient clipping against one exploding batch, the divergence
warning, and options added later leaving stored keys (cache directories, resume
fingerprints) unchanged."""

import json
import warnings
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from latentda.errors import TrainingWarning
from latentda.schema import parse, to_dict
from latentda.surrogates.train_ldnet import train_config
from latentda.surrogates.training import StageConfig, StepDecay, train_stage

SPIKE_STEP = 9  # the 10th optimiser step, in epoch 3 (4 steps per epoch)


class SpikyQuadratic(nn.Module):
    """Loss ``scale · |w|²`` with ``scale = 1e12`` on one optimiser step and 1 otherwise: an
    unstable rollout in one batch, in miniature. Validation: ``|w|²``."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(4))
        self.steps = 0

    def forward(self, batch: Tensor, gen: torch.Generator) -> Tensor:
        scale = 1e12 if self.steps == SPIKE_STEP else 1.0
        self.steps += 1
        return scale * (self.w**2).sum()

    def validate(self) -> float:
        return float((self.w.detach() ** 2).sum())


def run(tmp_path: Path, clip: float | None, epochs: int = 30) -> tuple[SpikyQuadratic, list]:
    objective = SpikyQuadratic()
    stage = StageConfig(
        epochs=epochs,
        batch_size=1,
        lr=0.05,
        decay=StepDecay(every=10**6),  # a constant rate
        patience=0,
        eval_every=epochs,
        clip_grad_norm=clip,
    )
    out = tmp_path / f"clip-{clip}"
    result = train_stage(objective, [objective.w], 4, stage, 0, out, "s", {}, progress=False)
    return objective, result.history


def test_clipping_keeps_training_alive_after_an_exploding_batch(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingWarning)
        unclipped, history = run(tmp_path, None)
        clipped, clipped_history = run(tmp_path, 1.0)
    # The spike's gradient (2e12 · w) fills Adam's second moment: without clipping the
    # steps after it are ~1e-6 of normal and |w|² stalls near its value at the spike; with
    # the norm clipped to 1 Adam keeps its step size and |w|² falls to ~0 in the same steps.
    assert unclipped.validate() > 0.3
    assert clipped.validate() < 1e-3
    # The record shows the norm before clipping, so a threshold can be chosen from it.
    assert history[2]["grad_norm_max"] > 1e11
    assert clipped_history[2]["grad_norm_max"] > 1e11


def test_a_clip_above_every_gradient_changes_nothing(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingWarning)
        a, _ = run(tmp_path, None, epochs=2)
        b, _ = run(tmp_path, 1e30, epochs=2)
    assert torch.equal(a.w, b.w)


def test_a_diverging_loss_warns_once_with_what_to_change(tmp_path: Path) -> None:
    with pytest.warns(TrainingWarning, match=r"s: training loss .* epoch 3 .* set clip_grad_norm"):
        _, history = run(tmp_path, None, epochs=5)
    saved = json.loads((tmp_path / "clip-None" / "s.json").read_text())["history"]
    assert [r["grad_norm_max"] for r in saved] == [r["grad_norm_max"] for r in history]


def test_options_added_later_leave_stored_keys_unchanged() -> None:
    # An option at its default is not in the plain-data view that cache keys and resume
    # fingerprints hash, so artefacts trained before it existed are still found.
    assert "clip_grad_norm" not in to_dict(StageConfig())
    assert "clip_grad_norm" not in to_dict(train_config(None))["stage1"]
    clipped = train_config({"stage1": {"clip_grad_norm": 1.0}})
    assert to_dict(clipped)["stage1"]["clip_grad_norm"] == 1.0
    assert parse(StageConfig, to_dict(clipped.stage1), "stage1") == clipped.stage1


def test_a_non_positive_clip_is_refused() -> None:
    from latentda.errors import ConfigError

    with pytest.raises(ConfigError, match=r"stage1.clip_grad_norm must be > 0"):
        train_config({"stage1": {"clip_grad_norm": 0.0}})


class Misled(nn.Module):
    """Training pushes ``w`` up (loss ``−w``) while validation wants it at 0 (``w²``): every
    step makes the validated score worse than the start."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, batch: Tensor, gen: torch.Generator) -> Tensor:
        return -self.w

    def validate(self) -> float:
        return float(self.w.detach() ** 2)


@pytest.mark.parametrize("baseline", [None, 0.0])
def test_a_stage_keeps_its_starting_weights_unless_beaten(
    tmp_path: Path, baseline: float | None
) -> None:
    objective = Misled()
    stage = StageConfig(epochs=4, batch_size=1, lr=0.1, patience=0, eval_every=2)
    with warnings.catch_warnings():  # a falling negative loss is not a diverging one
        warnings.simplefilter("error", TrainingWarning)
        result = train_stage(
            objective, [objective.w], 2, stage, 0, tmp_path, "s", {}, False, baseline=baseline
        )
    if baseline is None:  # the best evaluation of the stage, though worse than the start
        assert result.best_epoch == 2 and float(objective.w.detach()) > 0.1
    else:
        assert result.best_epoch == 0 and result.best_score == 0.0
        assert float(objective.w.detach()) == 0.0
