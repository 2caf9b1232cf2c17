"""Safe, self-describing checkpoints: tensors in safetensors, everything else in JSON.

A checkpoint ``NAME`` in a directory is two files: ``NAME.json`` (format version, kind,
architecture, normalisation statistics, training config, data fingerprint, the name and
SHA-256 of its weights file) and the weights file it names. Loading never unpickles anything.

Writes are crash-safe: the weights are written (temp file + rename) under a fresh name first,
then the JSON is atomically replaced, then the previous weights file is removed. Whatever
the moment of an interruption, the JSON names a complete weights file that matches its hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from latentda import __version__
from latentda.errors import DataError
from latentda.io import atomic_write, write_json

FORMAT = "latentda-checkpoint"
#: Bumped whenever the meaning of stored tensors or keys changes.
FORMAT_VERSION = 1


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(
    directory: str | os.PathLike[str],
    name: str,
    tensors: dict[str, Tensor],
    meta: dict[str, Any],
    version: int | None = None,
) -> Path:
    """Write checkpoint ``name`` into ``directory``; returns the JSON path.

    ``meta`` must be JSON-serialisable and must hold ``kind``. ``version`` (e.g. an epoch
    counter) makes the weights file name unique so that overwriting a checkpoint is atomic.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    stem = name if version is None else f"{name}-{version:06d}"
    weights = d / f"{stem}.safetensors"
    blob = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(weights, lambda tmp: save_file(blob, str(tmp)))
    json_path = d / f"{name}.json"
    previous = _weights_named_by(json_path)
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "latentda_version": __version__,
        **meta,
        "weights": weights.name,
        "weights_sha256": _sha256(weights),
    }
    write_json(json_path, doc)
    if previous is not None and previous != weights.name:
        (d / previous).unlink(missing_ok=True)
    return json_path


def _weights_named_by(json_path: Path) -> str | None:
    try:
        return json.loads(json_path.read_text()).get("weights")
    except (OSError, ValueError, AttributeError):
        return None


def load_checkpoint(
    directory: str | os.PathLike[str], name: str, kind: str
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read checkpoint ``name`` of kind ``kind``: ``(tensors, meta)``.

    Raises :class:`DataError` (one line) for a missing or damaged checkpoint, another kind,
    or an incompatible format version.
    """
    d = Path(directory)
    json_path = d / f"{name}.json"
    if not json_path.exists():
        raise DataError(f"no {kind} checkpoint in {d} ({json_path.name} is missing)")
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{json_path}: unreadable checkpoint description ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{json_path} is not a latentda checkpoint")
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{json_path}: checkpoint format version {meta.get('format_version')} (written by "
            f"latentda {meta.get('latentda_version')}); this latentda {__version__} reads "
            f"version {FORMAT_VERSION}: retrain it"
        )
    if meta.get("kind") != kind:
        raise DataError(f"{json_path} holds a {meta.get('kind')!r} checkpoint, not {kind!r}")
    weights = d / str(meta.get("weights"))
    if not weights.is_file():
        raise DataError(f"{json_path}: its weights file {weights.name} is missing")
    if _sha256(weights) != meta.get("weights_sha256"):
        raise DataError(f"{weights} is damaged: it does not match the hash in {json_path.name}")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise DataError(f"{weights}: unreadable weights ({exc})") from None
    return tensors, meta


def prefixed(prefix: str, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``{prefix.key: tensor}``: several state dicts in one weights file."""
    return {f"{prefix}.{k}": v for k, v in state.items()}


def unprefixed(prefix: str, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """The tensors stored under ``prefix.`` with the prefix removed."""
    p = f"{prefix}."
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def load_module_state(module: nn.Module, state: dict[str, Tensor], what: str) -> None:
    """``module.load_state_dict(state)`` with a one-line error on mismatched keys or shapes."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise DataError(f"{what} does not fit this architecture: {detail}"[:400]) from None


# ---------------------------------------------------------------------- optimiser state
def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split an optimiser's state dict into tensors and JSON-able rest."""
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, Tensor):
                tensors[f"{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(
    opt: torch.optim.Optimizer, tensors: dict[str, Tensor], rest: dict[str, Any]
) -> None:
    """Inverse of :func:`optimizer_tensors`."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, st in rest["scalars"].items():
        state.setdefault(int(idx), {}).update(st)
    opt.load_state_dict({"state": state, "param_groups": rest["param_groups"]})
