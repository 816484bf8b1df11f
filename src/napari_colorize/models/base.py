"""The Colorizer interface: the base class every model implements, its Prediction and the guide check.

A :class:`Colorizer` works at the *working resolution* on normalised tensors:
``prepare(reference=..., histogram=...)`` turns the guide into a reusable state
(reference features are computed once for a whole stack) and
``predict(L, state)`` returns a :class:`Prediction` with normalised ab.
The inference engine (:mod:`napari_colorize.inference`) does everything around
it: dtypes, sizes, edge-aware upsampling, recombination with the full-size L.
The concrete colorizers (the networks' and the baselines' wrappers) are in
:mod:`napari_colorize.models.adapters`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["Colorizer", "Prediction", "require_reference"]


def require_reference(name: str, reference, argument: str = "reference=...") -> None:
    """The one check that an exemplar model (``name``) was given its guide: a ValueError when
    ``reference`` is None. ``argument``: how the caller passes the reference (for the message)."""
    if reference is None:
        raise ValueError(f"{name!r} is an exemplar model: it needs a reference image ({argument})")


@dataclass
class Prediction:
    """Output of :meth:`Colorizer.predict` for one batch (normalised ab)."""

    ab: torch.Tensor  # (B, 2, h, w) at the working size
    scales: list[torch.Tensor] = field(default_factory=list)  # P1..P4, each (B, 2, h_i, w_i)
    attention: dict = field(default_factory=dict)
    confidence: torch.Tensor | None = None  # (B, 1, h, w) in [0, 1] at the working size: how well each pixel matched
    # the guide state this call completed (a new dict; the one given is left as it was): the reference's
    # features, encoded along with the target, for the next call with the same guide. None: nothing to keep
    state: dict | None = None


class Colorizer:
    """Base class. Attributes: ``name``, ``kind`` ("exemplar" or "histogram"),
    ``config`` (a JSON-able dict), ``device``, ``multiple`` (working sizes are
    rounded to it), ``default_size`` (working long side, pixels)."""

    name: str = "model"
    gives_confidence: bool = False  # its predictions carry a per-pixel match confidence
    source: str | None = None  # what load_model() can load this model from again (None: it cannot)
    weights_file: str | None = None  # the checkpoint its weights came from (None: built without one)
    kind: str = "exemplar"
    multiple: int = 1
    default_size: int = 256
    min_size: int = 8

    def __init__(self, name: str, config: dict | None = None, device: torch.device | str = "cpu") -> None:
        self.name = name
        self.config = dict(config or {})
        self.device = torch.device(device)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.kind}) on {self.device}>"

    # guide -> state ----------------------------------------------------------
    def prepare(self, reference: torch.Tensor | None = None, histogram: torch.Tensor | None = None):
        """``reference``: ``(K, 3, h, w)`` RGB in [0, 1] at the working size, ``K`` references (usually
        1; several: every target position may take colour from any of them, see
        :mod:`napari_colorize.models.union`); ``histogram``: ``(21, 21)``. Returns a state for
        :meth:`predict`."""
        raise NotImplementedError

    def predict(self, L: torch.Tensor, state, return_attention: bool = False) -> Prediction:
        """``L``: ``(B, 1, h, w)`` normalised lightness (``L/50 - 1``). ``state`` is not changed: what a
        model computes of the guide on the way (an exemplar network's reference features) comes back
        in :attr:`Prediction.state`."""
        raise NotImplementedError

    def attention_memory(self, wshape: tuple[int, int], references: int = 1) -> int:
        """Estimated peak bytes of the model's attention for one slice at working shape ``wshape``
        with ``references`` references (0: no attention worth sizing)."""
        return 0

    def precompute(self, state):
        """The state with everything about the guide computed now (reference features), for many
        slices, or to be sent to other processes once. The default: the state as it is."""
        return state
