"""The exemplar widget's 'Keyframes' panel: a reference (or several) set on slices of a stack.

Only bookkeeping of which layers are the references of which slice; what the keyframes do is the
library's (:mod:`napari_colorize.keyframes`)."""

from __future__ import annotations

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton, Select

from ..keyframes import BLENDS

__all__ = ["KeyframePanel"]


class KeyframePanel(Container):
    """Keyframes of the target on view: *set this slice's reference* takes the slice on view (along the
    target's last stack axis) and the widget's reference(s); the list shows them, *remove* drops the
    selected ones."""

    def __init__(self, viewer, target_picker, references) -> None:
        self._viewer, self._target, self._references = viewer, target_picker, references
        self.keyframes: dict[int, list] = {}
        self._frames = Select(label="keyframes", choices=[], value=[])
        self._frames.native.setMaximumHeight(90)
        self._set = PushButton(text="set this slice's reference(s)")
        self._remove = PushButton(text="remove selected")
        self._blend = ComboBox(label="between keyframes", choices=list(BLENDS), value="linear")
        self._blend.tooltip = ("linear: mix the two neighbouring keyframes' colours by distance; nearest: the nearer "
                               "keyframe's. Keyframes on adjacent slices mark a cut: nothing is mixed across it")
        self._status = Label(value="no keyframes: the reference colours every slice")
        super().__init__(widgets=[self._set, self._frames, self._remove, self._blend, self._status])
        self._set.clicked.connect(self.set_here)
        self._remove.clicked.connect(self.remove_selected)

    def _choices(self, _w=None):
        return [(f"slice {z}: " + ", ".join(l.name for l in layers), z) for z, layers in self.keyframes.items()]

    def current_slice(self) -> int | None:
        """The slice on view of the target along its last stack axis (None: a 2-D target)."""
        target = self._target.value
        if target is None:
            return None
        stack_nd = target.data.ndim - (3 if target.rgb else 2)
        if stack_nd < 1:
            return None
        data_point = target.world_to_data(self._viewer.dims.point[-target.ndim:])
        z = int(round(float(data_point[stack_nd - 1])))
        return int(np.clip(z, 0, target.data.shape[stack_nd - 1] - 1))

    def set_here(self) -> None:
        z = self.current_slice()
        refs = self._references()
        if z is None:
            self._status.value = "the target is a 2-D image: keyframes are for stacks"
            return
        if not refs:
            self._status.value = "choose a colour reference first"
            return
        self.keyframes[z] = list(refs)
        self.keyframes = dict(sorted(self.keyframes.items()))
        self._refresh(f"slice {z}: {', '.join(l.name for l in refs)}")

    def remove_selected(self) -> None:
        for z in list(self._frames.value or []):
            self.keyframes.pop(z, None)
        self._refresh("removed")

    def _refresh(self, what: str) -> None:
        self._frames.value = []
        self._frames.choices = []  # (new entries in slice order, not after the old ones)
        self._frames.choices = self._choices()
        n = len(self.keyframes)
        self._status.value = f"{what}; {n} keyframe(s)" if n else "no keyframes: the reference colours every slice"

    @property
    def blend(self) -> str:
        return self._blend.value

    def guide(self, layers) -> dict | None:
        """``{slice: [reference arrays]}`` for a run (None: no keyframes); keyframes whose layers are
        gone are dropped (said in the status)."""
        kept = {z: refs for z, refs in self.keyframes.items() if all(r in layers for r in refs)}
        if len(kept) < len(self.keyframes):
            self.keyframes = kept
            self._refresh("a keyframe's reference layer was removed: its keyframe is dropped")
        return {z: [np.asarray(r.data) for r in refs] for z, refs in kept.items()} or None

    def names(self) -> dict:
        return {int(z): [r.name for r in refs] for z, refs in self.keyframes.items()}
