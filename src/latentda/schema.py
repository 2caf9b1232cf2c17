"""Typed validation of plain dicts (parsed YAML) into configuration dataclasses.

Supported field types: ``int``, ``float``, ``bool``, ``str``, ``Literal[...]``, ``X | None``,
``list[X]``, nested dataclasses, and :class:`Tagged` families (a base dataclass whose concrete
subclass is chosen by the ``name`` key). Every error is a :class:`ConfigError` naming the key
path and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from latentda.errors import ConfigError

T = TypeVar("T")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class Tagged:
    """Mixin for a family of config dataclasses told apart by their ``name`` field.

    A base class declares ``registry: ClassVar[dict[str, type]] = {}``; each concrete subclass
    sets ``tag`` and registers itself via :meth:`register`.
    """

    registry: ClassVar[dict[str, type]]
    tag: ClassVar[str]
    family: ClassVar[str] = "name"
    #: Member used when a mapping gives no ``name`` (None: ``name`` is required).
    default_tag: ClassVar[str | None] = None

    @classmethod
    def register(cls, sub: type[T]) -> type[T]:
        cls.registry[sub.tag] = sub  # type: ignore[attr-defined]
        return sub


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: invalid value {value!r}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(
                f"{where}: {value!r} is not allowed; allowed: {', '.join(map(str, allowed))}"
            )
        return value
    if origin is list:
        (item,) = get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            value = float(value)  # PyYAML (YAML 1.1) reads "3e-3" as a string
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if math.isnan(value):
            raise ConfigError(f"{where}: NaN is not a valid value")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, where)
    raise TypeError(f"unsupported config field type {tp!r} at {where}")  # a bug, not user error


def parse(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from the mapping ``data``; ``where`` names it in messages."""
    if isinstance(cls, type) and issubclass(cls, Tagged) and "registry" in cls.__dict__:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping with a 'name' key, got {data!r}")
        name = data.get("name", getattr(cls, "default_tag", None))
        if "name" not in data and name is not None:
            data = {**data, "name": name}
        allowed = ", ".join(sorted(cls.registry))
        if name not in cls.registry:
            kind = where.rsplit(".", 1)[-1]
            raise ConfigError(f"{where}.name: unknown {kind} {name!r}; allowed: {allowed}")
        cls = cls.registry[name]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(fields))}"
        )
    hints = get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            value = _with_defaults(data[name], f)
            kwargs[name] = _coerce(value, hints[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key {name!r}")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        check(where)
    return typing.cast(T, obj)


def _with_defaults(value: Any, f: dataclasses.Field) -> Any:
    """A partial mapping for a nested config keeps the field's own default values for the
    keys it does not give (``stage1: {epochs: 5}`` changes only ``epochs``), unless it
    names another member of a :class:`Tagged` family."""
    if not isinstance(value, dict) or f.default_factory is dataclasses.MISSING:
        return value
    default = f.default_factory()
    if not dataclasses.is_dataclass(default):
        return value
    if isinstance(default, Tagged) and value.get("name", default.tag) != default.tag:
        return value
    merged = to_dict(default)
    for key, v in value.items():
        merged[key] = _with_defaults(v, _field_of(default, key))
    return merged


def _field_of(obj: Any, name: str) -> dataclasses.Field:
    for f in dataclasses.fields(obj):
        if f.name == name:
            return f
    return dataclasses.field()  # an unknown key: parse() reports it


#: ``dataclasses.field(metadata=...)`` of an option added after artefacts were stored under
#: keys built by :func:`to_dict` (cache directories, resume fingerprints): while the field
#: holds its default it is left out of the plain-data view, so those keys stay valid. Only
#: for a default that reproduces the behaviour from before the option existed.
ADDED_LATER = {"omit_default": True}


def to_dict(obj: Any) -> Any:
    """Plain-data view of a config (for metrics.json, dataset attributes and cache keys);
    fields marked :data:`ADDED_LATER` are left out while they hold their default."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_dict(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.init and not (f.metadata.get("omit_default") and getattr(obj, f.name) == f.default)
        }
    if isinstance(obj, list):
        return [to_dict(v) for v in obj]
    return obj


def positive(where: str, **values: float) -> None:
    """Raise unless every value is > 0."""
    for key, v in values.items():
        if not v > 0:
            raise ConfigError(f"{where}.{key} must be > 0, got {v}")


def non_negative(where: str, **values: float) -> None:
    """Raise unless every value is >= 0."""
    for key, v in values.items():
        if not v >= 0:
            raise ConfigError(f"{where}.{key} must be >= 0, got {v}")
