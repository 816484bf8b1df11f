"""Values computed on first use, once: :class:`LazyList` and :class:`LazyDict` (a result's scales and attention maps)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Callable

__all__ = ["LazyList", "LazyDict"]


class _Lazy:
    """A value computed on first use, once."""

    def __init__(self, compute: Callable) -> None:
        self._compute, self._value = compute, None

    def _get(self):
        if self._value is None:
            self._value, self._compute = self._kind(self._compute()), None
        return self._value

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return repr(self._get()) if self._value is not None else f"{type(self).__name__}(<not computed yet>)"


class LazyList(_Lazy, Sequence):
    """A list computed on first use (``res.scales``: P1-P4 as RGB cost more than the network's
    own output, so they are converted only when someone looks at them)."""

    _kind = list

    def __getitem__(self, i):
        return self._get()[i]

    def __eq__(self, other) -> bool:
        return list(self._get()) == list(other) if isinstance(other, (list, tuple, Sequence)) else NotImplemented


class LazyDict(_Lazy, Mapping):
    """A dict computed on first use (``res.attention``: maps converted for display on demand)."""

    _kind = dict

    def __getitem__(self, k):
        return self._get()[k]

    def __iter__(self):
        return iter(self._get())
