"""The finished parts of a ``latentda benchmark`` run, so that an interrupted run resumes.

A benchmark tunes and tests one method of one observation setting at a time (hours at
``bench`` size); each finished pair is written to ``OUT/progress/<setting>/<method>``
(``.json``: the key, the tuning record and per-case metadata; ``.safetensors``: the
per-frame scores and traces), atomically, with the full-order reference timed in the run
that computed it (so that a resumed run's speed-ups still divide timings of one run).
Running the same command again loads every pair whose key still matches and computes only
the rest. A pair still running keeps a :class:`Journal` of its finished cases beside it
(``OUT/progress/<setting>/<method>.partial/``: each tuning trial on each validation
trajectory, each test case, and the full-order reference of the run that started the pair),
so that a pair longer than one session (a full-order filter on the sphere takes hours)
resumes at the case it stopped at; the journal goes once the pair is saved. The key
(:func:`progress_key`) holds what a result depends on and nothing more: the package
version, the data's fingerprint, the test and validation trajectories, ensemble size, seeds
and tuning budget, the setting's observations, the method with its default knobs and grid,
and the artefacts it reads (by their content-hash directory names). A code change within
one version is not in it: clear ``OUT/progress`` (or the method's files there, journal
included) after changing a method.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from latentda import __version__
from latentda.experiments.field_config import FieldMethodConfig
from latentda.experiments.field_outcomes import Outcome, Trace
from latentda.experiments.field_twin import FieldTwinResult
from latentda.io import atomic_write, write_json
from latentda.schema import to_dict

#: Benchmark configuration keys a method's results depend on besides its setting's
#: observations, its own knobs and the data: which trajectories, how many members, which
#: seeds, how much tuning, and the seed placing random sensor layouts.
_RUN_KEYS = ("test_trajectories", "val_trajectories", "ensemble_size", "seeds", "tuning_budget")


def progress_key(
    config: dict[str, Any],
    data: str,
    setting: str,
    method: FieldMethodConfig,
    artefacts: dict[str, Path],
    sensor_seed: int,
) -> dict[str, Any]:
    """What the results of ``method`` in ``setting`` depend on (JSON-able), and nothing
    else, so that changing one setting, method or surrogate keeps the others' results.

    Parameters
    ----------
    config
        The benchmark configuration as plain data (``to_dict``).
    data
        The store's fingerprint.
    setting
        The setting's name (its observation config is taken from ``config``).
    method
        The method's config as the run builds it before the knob search (its defaults with
        the run's fixed ``knobs``): its key, those knobs and its grid enter the key.
    artefacts
        The setting's trained artefacts; those the method needs enter by their
        content-hash directory names.
    sensor_seed
        The seed placing random layouts.
    """
    return {
        "latentda": __version__,
        "data": data,
        "run": {k: config[k] for k in _RUN_KEYS},
        "sensor_seed": sensor_seed,
        "setting": setting,
        "observations": config[setting],
        "method": method.tag,
        "defaults": to_dict(method),
        "grid": method.grid,
        "artefacts": {k: Path(artefacts[k]).name for k in sorted(method.needs)},
    }


@dataclass
class Finished:
    """One finished ``(setting, method)`` pair as stored.

    Attributes
    ----------
    tuning
        The knob search's record.
    outcomes
        Per ``(position, seed)``.
    full_order
        The full-order reference (``dynamics_s``, ``members``, ``state_dim``) timed in the
        run that computed the pair; ``None`` for pairs saved before it was stored.
    """

    tuning: dict[str, Any]
    outcomes: dict[tuple[int, int], Outcome]
    full_order: dict[str, Any] | None


class Progress:
    """Finished ``(setting, method)`` results under ``root`` (``OUT/progress``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _paths(self, setting: str, method: str) -> tuple[Path, Path]:
        base = self.root / setting / method
        return base.with_suffix(".json"), base.with_suffix(".safetensors")

    def load(self, key: dict[str, Any]) -> Finished | None:
        """The pair stored under ``key``, or ``None`` if absent or made with another key (a
        changed configuration is computed anew)."""
        meta_path, tensor_path = self._paths(key["setting"], key["method"])
        if not (meta_path.exists() and tensor_path.exists()):
            return None
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != json.loads(json.dumps(key)):
            return None
        tensors = load_file(tensor_path)
        outcomes = {(c["position"], c["seed"]): _outcome(c, tensors) for c in meta["cases"]}
        shutil.rmtree(self._journal_dir(key), ignore_errors=True)  # left by a stop while saving
        return Finished(meta["tuning"], outcomes, meta.get("full_order"))

    def save(
        self,
        key: dict[str, Any],
        tuning: dict[str, Any],
        outcomes: dict[tuple[int, int], Outcome],
        full_order: dict[str, Any],
    ) -> None:
        """Store one finished pair with the full-order reference timed in the same run:
        tensors first, the JSON (which names the key) last, so a pair interrupted while
        saving is not taken as finished."""
        meta_path, tensor_path = self._paths(key["setting"], key["method"])
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, torch.Tensor] = {}
        cases = [_entry(pair, o, tensors) for pair, o in outcomes.items()]
        meta_path.unlink(missing_ok=True)
        atomic_write(tensor_path, lambda tmp: save_file(tensors, str(tmp)))
        write_json(
            meta_path,
            {"key": key, "tuning": tuning, "cases": cases, "full_order": full_order},
        )
        shutil.rmtree(self._journal_dir(key), ignore_errors=True)

    def add_reference(self, key: dict[str, Any], full_order: dict[str, Any]) -> None:
        """Store ``full_order`` with the finished pair ``key`` saved without one (pairs older
        than the stored reference), so that later renders reuse this timing instead of each
        re-timing the solver on whatever load the machine has then."""
        meta_path, _ = self._paths(key["setting"], key["method"])
        meta = json.loads(meta_path.read_text())
        write_json(meta_path, {**meta, "full_order": full_order})

    def _journal_dir(self, key: dict[str, Any]) -> Path:
        return self.root / key["setting"] / f"{key['method']}.partial"

    def journal(self, key: dict[str, Any]) -> Journal:
        """The journal of the unfinished pair ``key`` (emptied if it was kept for another
        key)."""
        return Journal(self._journal_dir(key), key)


def _entry(pair: tuple[int, int], o: Outcome, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The JSON entry of case ``pair = (position, seed)``; its tensors go into ``tensors``
    under the case's tag."""
    pos, seed = pair
    tag = f"{pos}_{seed}"
    entry: dict[str, Any] = {"position": pos, "seed": seed, "tag": tag, "error": o.error}
    if o.result is not None:
        r = o.result
        entry.update(
            timings=r.timings,
            n_frames=r.n_frames,
            n_observed=r.n_observed,
            n_sensors=r.n_sensors,
            latent_dim=r.latent_dim,
        )
        if r.gn_iterations:
            entry["gn_iterations"] = list(r.gn_iterations)
        for k, v in r.scores.items():
            tensors[f"{tag}/scores/{k}"] = v.double().contiguous()
        if o.trace is not None:
            # float32, as the store keeps the truth: the figures need no more.
            tensors[f"{tag}/final_mean"] = o.trace.final_mean.float().contiguous()
            tensors[f"{tag}/params"] = o.trace.params.double().contiguous()
    return entry


def _outcome(entry: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Outcome:
    """The inverse of :func:`_entry`."""
    if entry["error"] is not None:
        return Outcome(None, None, entry["error"])
    tag = entry["tag"]
    prefix = f"{tag}/scores/"
    scores = {k[len(prefix) :]: v.double() for k, v in tensors.items() if k.startswith(prefix)}
    result = FieldTwinResult(
        scores=scores,
        timings=entry["timings"],
        n_frames=entry["n_frames"],
        n_observed=entry["n_observed"],
        n_sensors=entry["n_sensors"],
        latent_dim=entry["latent_dim"],
        # Entries journalled before the iterations were recorded have none.
        gn_iterations=tuple(entry.get("gn_iterations", ())),
    )
    trace = None
    if f"{tag}/final_mean" in tensors:
        trace = Trace(tensors[f"{tag}/final_mean"].double(), tensors[f"{tag}/params"])
    return Outcome(result, trace)


class Journal:
    """The finished cases of one ``(setting, method)`` pair that is still running, in
    ``directory`` (``<method>.partial``), so that a stopped run resumes at the case it
    stopped at rather than at the pair's start.

    Each unit is written atomically when it finishes and read back instead of recomputed:
    a tuning trial's score on one validation trajectory (:meth:`trial`), a test case's
    :class:`Outcome` (:meth:`outcome`), and the full-order reference of the run that
    started the pair (:meth:`reference`, so that the pair's speed-up divides one timing
    even when its cases came from several runs). ``key.json`` names the pair's key; a
    journal kept for another key is emptied.
    """

    def __init__(self, directory: Path, key: dict[str, Any]) -> None:
        self.directory = Path(directory)
        key = json.loads(json.dumps(key))
        key_path = self.directory / "key.json"
        if self.directory.exists() and (
            not key_path.exists() or json.loads(key_path.read_text()) != key
        ):
            shutil.rmtree(self.directory)
        # Every time, not only for a new journal: git keeps no empty directory, so a journal
        # committed before its first test case comes back without ``test/``.
        (self.directory / "tuning").mkdir(parents=True, exist_ok=True)
        (self.directory / "test").mkdir(exist_ok=True)
        if not key_path.exists():
            write_json(key_path, key)

    def reference(self, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The full-order reference stored with the journal, else ``compute()`` stored."""
        path = self.directory / "full_order.json"
        if path.exists():
            return json.loads(path.read_text())
        reference = compute()
        write_json(path, reference)
        return reference

    def trial(
        self, index: int, case: int, knobs: dict[str, Any], compute: Callable[[], Outcome]
    ) -> tuple[float, str | None]:
        """Tuning trial ``index`` (knobs ``knobs``) on validation case ``case``: its
        time-mean relative RMSE (``inf`` for a run that failed) and its error, stored or
        computed by ``compute()`` and stored."""
        path = self.directory / "tuning" / f"{index}_{case}.json"
        if path.exists():
            stored = json.loads(path.read_text())
            if stored["knobs"] == json.loads(json.dumps(knobs)):
                score = stored["val_rel_rmse"]
                return (math.inf if score is None else float(score)), stored["error"]
        o = compute()
        score = math.inf if o.result is None else float(o.result.time_means()["rel_rmse"])
        record = {"knobs": knobs, "val_rel_rmse": None if math.isinf(score) else score}
        write_json(path, {**record, "error": o.error})
        return score, o.error

    def outcome(self, pair: tuple[int, int], compute: Callable[[], Outcome]) -> Outcome:
        """Test case ``pair = (position, seed)``: stored, or ``compute()`` stored."""
        base = self.directory / "test" / f"{pair[0]}_{pair[1]}"
        meta_path, tensor_path = base.with_suffix(".json"), base.with_suffix(".safetensors")
        if meta_path.exists() and tensor_path.exists():
            return _outcome(json.loads(meta_path.read_text()), load_file(tensor_path))
        o = compute()
        tensors: dict[str, torch.Tensor] = {}
        entry = _entry(pair, o, tensors)
        meta_path.unlink(missing_ok=True)  # the JSON, written last, marks a case finished
        atomic_write(tensor_path, lambda tmp: save_file(tensors, str(tmp)))
        write_json(meta_path, entry)
        return o
