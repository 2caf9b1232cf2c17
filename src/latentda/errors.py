"""Exceptions that mean "the user asked for something we cannot do".

The CLI turns every :class:`LatentDAError` into a one-line message and exit code 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LatentDAError(Exception):
    """Base class of user-facing errors (bad input, not bugs)."""


class ConfigError(LatentDAError, ValueError):
    """An experiment configuration is malformed: unknown key, wrong type, value out of range."""


class DataError(LatentDAError, ValueError):
    """Input data is unusable: wrong shape, NaN where values are required, all readings missing."""


class FilterDivergence(LatentDAError, RuntimeError):
    """An ensemble became non-finite (NaN/Inf); the message names the cycle."""


class TrainingDivergence(LatentDAError, RuntimeError):
    """A training loss became non-finite; the message names the stage and epoch."""


class TrainingWarning(UserWarning):
    """Training goes on but is likely wasted (a diverging loss); the message says what to
    change."""
