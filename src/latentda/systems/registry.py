"""Field systems by name, imported lazily (the sphere needs torch-harmonics)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from latentda.errors import ConfigError
from latentda.systems.base import FieldSystem

#: name -> "module:Class"; each class has ``from_size(size, **overrides)``.
FIELD_SYSTEMS: dict[str, str] = {
    "kolmogorov": "latentda.systems.kolmogorov:Kolmogorov",
    "tsunami": "latentda.systems.tsunami:Tsunami",
    "sphere": "latentda.systems.sphere:Sphere",
}

SIZES: tuple[str, ...] = ("ci", "bench", "paper")


def field_system(name: str, size: str = "ci", **overrides: Any) -> FieldSystem:
    """Build the field system ``name`` at a named ``size`` (``ci``, ``bench``, ``paper``)."""
    if name not in FIELD_SYSTEMS:
        raise ConfigError(f"unknown system {name!r}; allowed: {', '.join(sorted(FIELD_SYSTEMS))}")
    if size not in SIZES:
        raise ConfigError(f"unknown size {size!r}; allowed: {', '.join(SIZES)}")
    module, cls = FIELD_SYSTEMS[name].split(":")
    return getattr(import_module(module), cls).from_size(size, **overrides)
