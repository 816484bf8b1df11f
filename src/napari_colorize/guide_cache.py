"""The prepared guides of recent calls, kept so that a call with the same reference skips its encoding.

A widget re-runs with one reference all the time, a batch of targets shares one reference: the
reference's backbone features and keys at a working shape (a histogram's state) need computing once.
:data:`GUIDE_CACHE` keeps the last few prepared guides of each loaded model, keyed by the model object
(weakly: a model that is dropped takes its entries with it), the working shape, a hash of the guide's
pixels *as the model receives them* and the state of the model's network (every parameter's version
counter, which any in-place change such as ``load_state_dict`` advances, and its config), so a changed
array or a changed network is a new entry and the result of a call never depends on what was cached. ``GUIDE_CACHE.clear()`` frees it; ``GUIDE_CACHE.entries = 0`` turns it off.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict

import numpy as np
import torch

from .provenance import pixels_digest

__all__ = ["GuideCache", "GUIDE_CACHE", "guide_key", "network_state", "state_bytes"]


def network_state(model) -> tuple:
    """What a model's prepared guide depends on besides the guide: its network's parameters (their
    version counters and storage) and config, and those of a network it mixes in (an exemplar's
    ``companion``, whose features the guide keeps too); ``()`` for a model without a network."""
    net = getattr(model, "network", None)
    if not isinstance(net, torch.nn.Module):
        return ()
    params = tuple((p.data_ptr(), p._version) for p in net.parameters())
    config = getattr(net, "config", None)
    cfg = config.to_dict() if hasattr(config, "to_dict") else config
    companion = getattr(model, "companion", None)
    other = network_state(companion) if companion is not None else ()
    return (hashlib.blake2b(repr((params, cfg, other)).encode(), digest_size=16).hexdigest(),)


def guide_key(wshape: tuple[int, int], reference: torch.Tensor | None, histogram: torch.Tensor | None,
              model=None) -> tuple:
    """The cache key of a guide at a working shape: the shape, hashes of the pixels (or bins) and, with
    ``model``, :func:`network_state`."""
    digest = [None if t is None else pixels_digest(t) for t in (reference, histogram)]
    return (tuple(int(s) for s in wshape), *digest) + \
        (network_state(model) if model is not None else ())


def state_bytes(state) -> int:
    """Bytes held by the arrays of a prepared guide (nested dicts, lists and tuples)."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, np.ndarray):
        return state.nbytes
    if isinstance(state, dict):
        return sum(state_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_bytes(v) for v in state)
    return 0


class GuideCache:
    """At most ``entries`` prepared guides per model (the least recently used goes first), none larger
    than ``max_bytes`` (checked when stored and again by :meth:`get`: a state grows when the engine adds
    the features a model computed on first use, :func:`~napari_colorize.plan.keep_guide`). Thread-safe."""

    def __init__(self, entries: int = 2, max_bytes: int = 256 * 2**20) -> None:
        self.entries, self.max_bytes = int(entries), int(max_bytes)
        self._by_model: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, model, key):
        """The state stored for ``(model, key)``, or None."""
        with self._lock:
            states = self._by_model.get(model)
            if states is None or key not in states:
                return None
            if state_bytes(states[key]) > self.max_bytes:
                del states[key]
                return None
            states.move_to_end(key)
            return states[key]

    def put(self, model, key, state) -> None:
        """Keep ``state`` for ``(model, key)`` (nothing when the cache is off or the state too large)."""
        if self.entries <= 0 or state_bytes(state) > self.max_bytes:
            return
        with self._lock:
            try:
                states = self._by_model.setdefault(model, OrderedDict())
            except TypeError:  # (an object that cannot be weakly referenced is not cached)
                return
            states[key] = state
            states.move_to_end(key)
            while len(states) > self.entries:
                states.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._by_model.clear()

    def __len__(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._by_model.values())


#: the engine's cache of prepared guides (:class:`GuideCache`)
GUIDE_CACHE = GuideCache()
