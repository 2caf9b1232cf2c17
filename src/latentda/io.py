"""Atomic file writes: a reader sees the old file or the whole new one, never half of it."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latentda.errors import ConfigError


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Write ``path`` through a temporary sibling file and an atomic rename.

    Parameters
    ----------
    path
        Destination. Its directory must exist.
    write
        Called with the temporary path; it must create that file completely.

    Returns
    -------
    Path
        The destination path.
    """
    dest = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def write_json(path: str | os.PathLike[str], payload: Any) -> Path:
    """Atomically write ``payload`` as indented JSON (keys in insertion order)."""

    def _write(tmp: Path) -> None:
        tmp.write_text(json.dumps(payload, indent=2, allow_nan=True) + "\n")

    return atomic_write(path, _write)


def prepare_output(out: Path) -> None:
    """Create directory ``out`` or fail with a one-line error (before any long computation)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".latentda-write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to {out}: {exc.strerror or exc}") from None
