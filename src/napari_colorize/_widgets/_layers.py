"""Layer bookkeeping for the widgets: we create and update only our own layers.

A layer is ours when its metadata holds the ``napari_colorize`` key. Adding a result under a name
that a *user* layer already has never touches that layer: ours gets a free name instead. Our layers
are found again by the *slot* recorded in their metadata (the name we asked for), not by their
current name, so a renamed layer, or one that had to take "NAME [2]", is still updated in place.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import numpy as np

from .._sample_data import SAMPLE_ROLE

OURS = "napari_colorize"
PROVENANCE = "provenance"  # layer.metadata[PROVENANCE]: how a result was made (napari_colorize.provenance)


def is_ours(layer) -> bool:
    return OURS in getattr(layer, "metadata", {})


def find_ours(viewer, slot: str):
    """Our layer recorded under ``slot`` (the name it was created for), or None. A layer without a
    slot (a kept result) is never found, whatever its name."""
    return next((l for l in viewer.layers if is_ours(l) and l.metadata[OURS].get("slot") == slot), None)


def free_name(viewer, name: str) -> str:
    names = {l.name for l in viewer.layers}
    if name not in names:
        return name
    k = 2
    while f"{name} [{k}]" in names:
        k += 1
    return f"{name} [{k}]"


def add_or_update_image(viewer, data, name: str, meta: dict, keep: bool = False, provenance: dict | None = None,
                        **kwargs):
    """Update our layer called ``name`` in place, or add a new image layer (ours).

    An update replaces data and metadata and re-applies ``scale``, ``translate`` and ``contrast_limits``
    (they follow the data); display choices the user may have changed (visibility, opacity, colormap)
    are kept. ``provenance``: how the data was made (``layer.metadata["provenance"]``, saved with an
    OME-Zarr export; an update without one drops the old)."""
    existing = None if keep else find_ours(viewer, name)
    if existing is not None and existing.data.shape == np.shape(data) and existing.rgb == kwargs.get("rgb", False):
        existing.data = data
        kept = {k: v for k, v in existing.metadata.items() if k != PROVENANCE}
        existing.metadata = {**kept, OURS: {**meta, "slot": name}, **({PROVENANCE: provenance} if provenance else {})}
        for k in ("scale", "translate", "contrast_limits"):
            if k in kwargs:
                setattr(existing, k, kwargs[k])
        return existing
    if existing is not None:
        viewer.layers.remove(existing)  # our own layer, of another shape: replace it
    target_name = free_name(viewer, name)
    # a kept result is nobody's slot: later runs add new layers rather than overwrite it
    slot = {} if keep else {"slot": name}
    return viewer.add_image(data, name=target_name, metadata={OURS: {**meta, **slot},
                                                              **({PROVENANCE: provenance} if provenance else {})},
                            **kwargs)


def remove_ours(viewer, which: Callable[[dict], bool], keep=()) -> int:
    """Remove our layers whose metadata (``layer.metadata[OURS]``) ``which`` accepts, except ``keep``;
    a user's layer is never removed. Returns how many were removed."""
    gone = [l for l in viewer.layers if is_ours(l) and l not in keep and which(l.metadata[OURS])]
    for layer in gone:
        viewer.layers.remove(layer)
    return len(gone)


def spatial_shape(layer) -> tuple[int, int]:
    """(Y, X) of an image layer: the last two axes, or the two before the colour axis of an RGB layer."""
    shape = layer.data.shape
    return tuple(shape[-3:-1] if layer.rgb else shape[-2:])


def query_size(layer) -> float:
    """Size (world units) of a query point: 2.5 % of the layer's larger side, visible at any zoom-to-fit."""
    return float(max(np.asarray(spatial_shape(layer)) * np.asarray(layer.scale[-2:])) * 0.025)


def query_points(viewer, target, name: str, color: str, meta: dict, on_move):
    """Our query Points layer called ``name``: created at the centre of ``target`` when it is missing,
    with ``on_move()`` called whenever the user drags or adds a point."""
    q = find_ours(viewer, name)
    if q is None:
        world = np.asarray(target.data_to_world(tuple(np.asarray(spatial_shape(target)) // 2)))
        q = viewer.add_points([world[-2:]], name=free_name(viewer, name), size=query_size(target),
                              face_color=color, metadata={OURS: {**meta, "slot": name}})
        q.events.data.connect(lambda e: on_move())
    return q


def query_cell(target, points, lattice_shape: tuple[int, int], centre: float = 0.5) -> tuple[int, int]:
    """The cell of a ``lattice_shape`` grid laid over ``target`` nearest the last point of ``points``;
    ``centre``: where a cell's centre lies in its block, a fraction of the block (``AttentionMaps.cell_centre``;
    0.5: the middle)."""
    pos = np.asarray(target.world_to_data(np.r_[np.zeros(target.ndim - 2), points.data[-1][-2:]]))[-2:]
    lat = np.asarray(lattice_shape)
    f = np.asarray(spatial_shape(target), float) / lat  # (data pixels per cell)
    i, j = np.clip(np.floor((pos + 0.5) / f - centre + 0.5).astype(int), 0, lat - 1)
    return int(i), int(j)


def overlay_transform(layer, src_shape: tuple[int, int], lattice_shape: tuple[int, int]):
    """Scale and translate that lay a ``lattice_shape`` grid over the last two axes of ``layer``,
    whose data has spatial shape ``src_shape`` (pixel centres aligned: the grid covers the layer exactly)."""
    scale = np.asarray(layer.scale[-2:], float)
    translate = np.asarray(layer.translate[-2:], float)
    f = np.asarray(src_shape, float) / np.asarray(lattice_shape, float)
    return tuple(scale * f), tuple(translate + scale * (f - 1) / 2)


def bring_to_front(viewer, layer) -> None:
    """Show our ``layer`` on top of the others (the last one drawn), visible."""
    layer.visible = True
    i = viewer.layers.index(layer)
    if i != len(viewer.layers) - 1:
        viewer.layers.move(i, len(viewer.layers))


# ---------------------------------------------------------------- layer pickers
def role(layer) -> str | None:
    """What a sample layer is for: "target", "reference", "truth" (``metadata[SAMPLE_ROLE]``), or None."""
    return (getattr(layer, "metadata", {}).get(SAMPLE_ROLE) or {}).get("role")


def layer_picker(viewer, label: str, kind=None, nullable: bool = False):
    """A combo box of the viewer's layers of ``kind`` (image layers by default), listed by name."""
    from magicgui.widgets import ComboBox
    from napari.layers import Image

    kind = Image if kind is None else kind
    return ComboBox(label=label, nullable=nullable,
                    choices=lambda _w: [(l.name, l) for l in viewer.layers if isinstance(l, kind)])


def colour_layers(viewer, exclude=()) -> list:
    """``(name, layer)`` of the viewer's colour (RGB) image layers that are not ours nor in ``exclude``:
    the choices of a several-references picker."""
    from napari.layers import Image

    return [(l.name, l) for l in viewer.layers if isinstance(l, Image) and getattr(l, "rgb", False)
            and not is_ours(l) and not any(l is x for x in exclude)]


def score_grey(layer) -> int:
    """How well ``layer`` fits as a greyscale target (0: not at all)."""
    if is_ours(layer) or role(layer) in ("reference", "truth") or getattr(layer, "rgb", True):
        return 0
    return 3 if role(layer) == "target" else 2


def score_colour(layer, target=None) -> int:
    """How well ``layer`` fits as a colour reference / colour source for ``target`` (0: not at all)."""
    if is_ours(layer) or not getattr(layer, "rgb", False) or layer is target or role(layer) == "truth":
        return 0
    return 3 if role(layer) == "reference" else 2


def score_truth(layer, target=None, reference=None) -> int:
    """How well ``layer`` fits as the true colours of ``target``: an RGB layer of its size, named as such."""
    if (is_ours(layer) or not getattr(layer, "rgb", False) or layer is target or layer is reference
            or target is None or spatial_shape(layer) != spatial_shape(target)):
        return 0
    if role(layer) == "truth":
        return 3
    return 2 if any(w in layer.name.lower() for w in ("truth", "ground", "true colour", "true color")) else 0


class DefaultPicks:
    """Keeps layer pickers on a sensible layer until the user chooses one.

    Each picker comes with ``score(layer) -> int`` (0 = unfit; it may look at the other pickers).
    A picker in automatic mode holds the best-scoring layer (the first in the layer list on ties) and
    keeps its layer while no other scores higher, unless a *new* sample layer (one with a role) scores as
    high: then it follows the newest (a second *Open Sample* brings a new target and reference; a layer
    the user adds does not move the pickers). Setting a picker (by hand or
    in code) ends its automatic mode; it resumes when that layer is removed. Call :meth:`reset` around
    the container's ``reset_choices`` (which napari calls whenever layers are added, removed, moved or
    renamed)."""

    def __init__(self) -> None:
        self._pickers: list[dict] = []
        self._busy = False
        self._seen: set[int] = set()  # ids of the layers the pickers have been offered
        self._new: list = []  # layers that came in since the last reset, oldest first

    def add(self, combo, score: Callable[[object], int]) -> None:
        entry = {"combo": combo, "score": score, "auto": True}
        self._pickers.append(entry)
        combo.changed.connect(lambda _=None, e=entry: self._on_changed(e))

    def is_auto(self, combo) -> bool:
        return next(e["auto"] for e in self._pickers if e["combo"] is combo)

    @contextmanager
    def _quiet(self):
        busy, self._busy = self._busy, True
        try:
            yield
        finally:
            self._busy = busy

    def _on_changed(self, entry) -> None:
        if self._busy:
            return
        entry["auto"] = False  # the user's choice
        self.pick()  # the other pickers may depend on it (reference != target)

    def reset(self, reset_choices: Callable[[], None]) -> None:
        before = [e["combo"].value for e in self._pickers]
        with self._quiet():
            reset_choices()
            for e, old in zip(self._pickers, before):
                if e["combo"].value is not old:  # the chosen layer is gone
                    e["auto"] = True
        offered = [l for e in self._pickers for l in e["combo"].choices if l is not None]
        self._new = [l for l in dict.fromkeys(offered) if id(l) not in self._seen]
        self._seen = {id(l) for l in offered}
        try:
            self.pick()
        finally:
            self._new = []

    def pick(self) -> None:
        """Put every picker in automatic mode on its best layer."""
        if not self._seen:
            self._seen = {id(l) for e in self._pickers for l in e["combo"].choices if l is not None}
        with self._quiet():
            for e in self._pickers:
                if e["auto"]:
                    self._pick_one(e["combo"], e["score"], self._new)

    @staticmethod
    def _pick_one(combo, score, new=()) -> None:
        layers = [l for l in combo.choices if l is not None]
        scores = [score(l) for l in layers]
        best = max(scores, default=0)
        current = combo.value
        if best <= 0:
            if None in combo.choices and (current is None or score(current) <= 0):  # nullable
                combo.value = None
            return
        newest = [l for l in new if role(l) is not None and any(l is c for c in layers) and score(l) == best]
        if newest:  # a sample layer that just came in fits as well: follow it (the newest)
            if newest[-1] is not current:
                combo.value = newest[-1]
            return
        if any(l is current for l in layers) and score(current) == best:
            return
        combo.value = layers[scores.index(best)]


def current_index(viewer, layer) -> tuple:
    """The index along ``layer``'s stack axes of the slice the viewer shows now (``()``: a 2-D image)."""
    data = layer.data
    nd = data.ndim - (1 if layer.rgb else 0)
    if nd <= 2:
        return ()
    step = viewer.dims.current_step[-nd:][:nd - 2]
    return tuple(min(max(int(s), 0), n - 1) for s, n in zip(step, data.shape[:nd - 2]))


def current_slice(viewer, layer) -> np.ndarray:
    """The 2-D image of ``layer`` the viewer shows now (the current slice of a stack)."""
    return np.asarray(layer.data[current_index(viewer, layer)])
