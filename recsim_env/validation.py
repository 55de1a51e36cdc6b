"""Argument checks shared by the environment's configs: a wrong type or range names the argument and what was given."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np

__all__ = ["check_int", "check_real", "coerce_fields"]


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int, or a TypeError / ValueError naming ``name``, the expected range and what was given."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}.")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        rng = f">= {low}" if high is None else (f"<= {high}" if low is None else f"in [{low}, {high}]")
        raise ValueError(f"{name} must be {rng}, got {value}.")
    return value


def check_real(name: str, value: Any, low: float | None = None, high: float | None = None, low_open: bool = False) -> float:
    """``value`` as a finite float in range, or a TypeError / ValueError naming ``name`` and what was given."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}.")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    if low is not None and (value <= low if low_open else value < low) or high is not None and value > high:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"<= {high}"
        raise ValueError(f"{name} must be {' and '.join(x for x in (lo, hi) if x)}, got {value}.")
    return value


def coerce_fields(cls: type, value: Any, name: str):
    """An instance of the dataclass ``cls`` from an instance, a partial dict of its fields, or None (its defaults);
    anything else, or an unknown field, raises naming the argument ``name`` and its known fields."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"{name} got unknown name(s) {unknown}; known names: {known}.")
        return cls(**value)
    raise TypeError(f"{name} must be a {cls.__name__}, a dict of its fields or None, got {type(value).__name__} {value!r}.")
