"""Field systems by name, imported lazily (the sphere needs torch-harmonics)."""

from __future__ import annotations

import dataclasses
from importlib import import_module
from typing import Any

import torch

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


def system_class(name: Any) -> type[FieldSystem]:
    """The class of the field system ``name`` (class-level facts such as ``periodic_axes``
    without building the system)."""
    if name not in FIELD_SYSTEMS:
        raise ConfigError(f"unknown system {name!r}; allowed: {', '.join(sorted(FIELD_SYSTEMS))}")
    module, cls_name = FIELD_SYSTEMS[name].split(":")
    return getattr(import_module(module), cls_name)


def system_from_config(config: dict[str, Any]) -> FieldSystem:
    """Rebuild a field system from its :meth:`config` (as stored in a dataset's attributes);
    derived entries of the description (sub-step sizes, units, ...) are ignored."""
    cfg = dict(config)
    cls = system_class(cfg.pop("name", None))
    init = {f.name for f in dataclasses.fields(cls) if f.init}
    kwargs = {k: v for k, v in cfg.items() if k in init}
    if isinstance(kwargs.get("bathymetry"), list):
        kwargs["bathymetry"] = torch.tensor(kwargs["bathymetry"], dtype=torch.float64)
    return cls(**kwargs)
