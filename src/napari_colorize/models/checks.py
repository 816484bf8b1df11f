"""Checks of configs that come from files (checkpoints from strangers): their types and ranges.

They are verified before anything is built, so that an edited config can neither allocate without
bound nor fail later with an obscure error."""

from __future__ import annotations

import re

__all__ = ["check_int", "check_float", "check_choice", "check_ints", "check_coefficients", "check_name",
           "is_model_name"]

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def check_int(name: str, value, lo: int, hi: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"config '{name}' must be an integer from {lo} to {hi}{' or null' if allow_none else ''}, "
                         f"not {value!r}")


def check_float(name: str, value, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= float(value) <= hi:
        raise ValueError(f"config '{name}' must be a number from {lo} to {hi}, not {value!r}")


def check_choice(name: str, value, choices) -> None:
    if value not in tuple(choices):
        raise ValueError(f"config '{name}' must be one of {sorted(choices)}, not {value!r}")


def check_ints(name: str, value, n: int, lo: int, hi: int) -> None:
    """One integer, or a sequence of ``n`` integers, each from ``lo`` to ``hi``."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"config '{name}' must hold {n} values, not {len(value)}")
        for i, v in enumerate(value):
            check_int(f"{name}[{i}]", v, lo, hi)
    else:
        check_int(name, value, lo, hi)


def check_coefficients(name: str, value, keys, bound: float = 100.0) -> None:
    """None, or a mapping of some of ``keys`` to finite numbers within +-``bound``."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise ValueError(f"config '{name}' must be an object of coefficients or null, not {value!r}")
    unknown = set(value) - set(keys)
    if unknown:
        raise ValueError(f"config '{name}': unknown coefficients {sorted(unknown)} (known: {sorted(keys)})")
    for k, v in value.items():
        check_float(f"{name}.{k}", v, -bound, bound)


def is_model_name(value) -> bool:
    """Whether ``value`` has the form of a model's registry name (lower-case letters, digits, ``.``, ``_``,
    ``-``; at most 64), not of a path."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def check_name(name: str, value) -> None:
    """A model's registry name (:func:`is_model_name`): never a path."""
    if not is_model_name(value):
        raise ValueError(f"config '{name}' must be a model name (lower-case letters, digits, '.', '_' or '-', at "
                         f"most 64), not {value!r}")
