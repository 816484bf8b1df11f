"""The exemplar widget's 'Colour points' panel: a Points layer whose points' face colours are hints.

Only the bookkeeping of the points layer (creating one, its colours, reading its points in the target's
pixels) and the scheduling of the live preview; the maths is the library's (:mod:`napari_colorize.hints`,
:class:`napari_colorize.preview.HintPreview`)."""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, PushButton
from napari.layers import Points
from napari.qt.threading import thread_worker
from qtpy.QtCore import QTimer

from ..hints import DEFAULT_SPREAD, check_hints, slice_hints
from ..preview import HintPreview
from ._jobs import JobRunner, RunsJobs
from ._sections import wrap_label
from ._layers import (OURS, add_or_update_image, bring_to_front, current_index, current_slice, overlay_transform,
                      remove_ours)
from ._workers import get_model

__all__ = ["HintPanel", "PALETTE", "points_as_hints"]

#: colours offered for new points (the napari layer controls give any other colour too)
PALETTE = {"sky blue": "#6fa8dc", "deep blue": "#1f4e9a", "grass green": "#5c9a3a", "foliage": "#2f5d2a",
           "skin": "#e0ac8a", "brick red": "#a8432f", "red": "#d32f2f", "orange": "#f08c2a", "yellow": "#f2d34b",
           "sand": "#d8c39a", "brown": "#6b4a2b", "purple": "#7b3fa0", "pink": "#e58fb6", "white": "#f4f4f4"}


def points_as_hints(points, target) -> list:
    """The points of a Points layer as hints in ``target``'s pixels (through world coordinates: any scale and
    translate). A 2-D layer, or a 2-D target: ``(y, x, (r, g, b))``, on every slice. A layer with stack axes
    over a stack: ``(z, y, x, (r, g, b))`` on the point's slice alone, ``z`` its index along the target's
    stack axes (a tuple for several; checked by the library); stack axes the layer lacks (a 3-D layer over
    a (T, Z, Y, X) target): the point on each slice along them, as napari shows it."""
    if points is None or len(points.data) == 0:
        return []
    world = np.asarray([points.data_to_world(p) for p in np.asarray(points.data)])
    nd = target.ndim
    m = min(nd, world.shape[1])  # the target's axes the points have coordinates on
    full = np.zeros((len(world), nd))
    full[:, -m:] = world[:, -m:]
    data = np.asarray([target.world_to_data(w) for w in full])
    yx = data[:, -2:]  # (an RGB layer's data coordinates have no colour axis)
    colours = [tuple(float(c) for c in col) for col in np.asarray(points.face_color)[:, :3]]
    if m <= 2:
        return [(float(y), float(x), col) for (y, x), col in zip(yx, colours)]
    at = np.rint(data[:, nd - m:nd - 2]).astype(int)  # the slice's index along the stack axes the points have
    out = []
    for (y, x), col, z in zip(yx, colours, at):
        for lead in np.ndindex(*target.data.shape[:nd - m]):
            idx = lead + tuple(int(i) for i in z)
            out.append((idx[0] if len(idx) == 1 else idx, float(y), float(x), col))
    return out


class HintPanel(RunsJobs, Container):
    """Colour points: *add a colour points layer*, a palette (or *pick from the reference*: click on
    it), a live preview at the working size while points are added, moved or recoloured, and how far
    each point's colour spreads. The widget's Run uses the points too."""

    def __init__(self, viewer, target_picker, references, model_name, size) -> None:
        self._viewer, self._target, self._references = viewer, target_picker, references
        self._model_name, self._size_of = model_name, size
        self._layer = ComboBox(label="points layer", nullable=True,
                               choices=lambda _w: [l for l in viewer.layers if isinstance(l, Points)])
        self._add = PushButton(text="add a colour points layer")
        self._palette = ComboBox(label="colour", choices=list(PALETTE), value="sky blue")
        self._pick = CheckBox(text="pick the colour from the reference (click on it)")
        self._spread = FloatSpinBox(label="spread (px)", value=DEFAULT_SPREAD, min=1.0, max=4096.0, step=4.0)
        self._spread.tooltip = ("with a reference: how far (working pixels, where lightness is flat) a point's colour "
                                "reaches; it stops at lightness edges. The levin model spreads without bound")
        self._live = CheckBox(text="live preview", value=True)
        self._status = Label(value="no colour points")
        wrap_label(self._status, lines=2)  # (a long status must not widen the dock)
        super().__init__(widgets=[self._layer, self._add, self._palette, self._pick, self._spread, self._live,
                                  self._status])
        self._add.clicked.connect(self.add_layer)
        self._palette.changed.connect(self._on_palette)
        self._layer.changed.connect(self._watch)
        self._live.changed.connect(lambda v: self.schedule() if v else self.drop_preview())
        self._spread.changed.connect(lambda _: (self._forget(), self.schedule()))
        self._timer = QTimer(self.native)  # (it goes with the widget: no preview after the dock is closed)
        self._timer.setSingleShot(True)
        self._timer.setInterval(30)  # (a drag gives many events: the latest one is previewed)
        self._timer.timeout.connect(self.preview)
        self._preview: HintPreview | None = None
        self._key = None
        self._watched = None
        self.generation = self.shown = 0
        self.jobs = JobRunner(status=self._status)  # one preview at a time
        viewer.mouse_drag_callbacks.append(self._on_click)
        viewer.dims.events.current_step.connect(self._on_step)  # (another slice on view: its points)

    # ------------------------------------------------------------ the points layer
    @property
    def points(self):
        layer = self._layer.value
        return layer if layer in self._viewer.layers else None

    def add_layer(self) -> None:
        """A new (empty) Points layer over the target, in 'add' mode, with the palette's colour."""
        target = self._target.value
        if target is None:
            self._status.value = "choose the grey target first"
            return
        nd = target.ndim
        size = max(3.0, 0.02 * max(target.data.shape[-3:-1] if target.rgb else target.data.shape[-2:]))
        layer = self._viewer.add_points(np.zeros((0, nd)), name="colour points", ndim=nd,
                                        scale=target.scale, translate=target.translate, size=size,
                                        face_color=PALETTE[self._palette.value], border_color="white",
                                        border_width=0.15, metadata={OURS: {"kind": "colour points"}})
        layer.current_face_color = PALETTE[self._palette.value]
        layer.mode = "add"
        self.reset_choices()
        self._layer.value = layer
        self._status.value = "click on the image to add points; their colour is the palette's (or the layer's)"

    def _on_palette(self, name) -> None:
        self.set_colour(PALETTE[name])

    def set_colour(self, colour) -> None:
        """The colour of new points, and of the points selected now."""
        layer = self.points
        if layer is None:
            return
        layer.current_face_color = colour  # (napari also recolours the selected points)

    def _on_click(self, viewer, event):
        if not self._pick.value:
            return
        self.pick_at(event.position)
        yield

    def pick_at(self, world_position) -> bool:
        """Take the colour of the reference under ``world_position`` (the first reference layer there)."""
        for ref in self._references():
            data = np.asarray(ref.world_to_data(world_position))[-2:]
            y, x = (int(round(v)) for v in data)
            shape = ref.data.shape[-3:-1]
            if 0 <= y < shape[0] and 0 <= x < shape[1]:
                rgb = np.asarray(ref.data[..., y, x, :3], np.float64).reshape(-1, 3)[-1]
                top = 255.0 if np.issubdtype(ref.data.dtype, np.integer) and ref.data.dtype.itemsize == 1 else \
                    65535.0 if np.issubdtype(ref.data.dtype, np.integer) else 1.0
                colour = np.clip(rgb / top, 0, 1)
                self.set_colour(colour)
                self._pick.value = False
                self._status.value = f"colour from '{ref.name}' at ({y}, {x}): " + \
                    "#" + "".join(f"{int(round(c * 255)):02x}" for c in colour)
                return True
        self._status.value = "that is not on a reference layer: click on the reference's pixels"
        return False

    def _watch(self, layer) -> None:
        if self._watched is not None:
            for ev in ("data", "face_color"):
                getattr(self._watched.events, ev).disconnect(self.schedule)
        self._watched = layer if isinstance(layer, Points) else None
        if self._watched is not None:
            for ev in ("data", "face_color"):
                getattr(self._watched.events, ev).connect(self.schedule)
        self.schedule()

    def hints(self, target=None) -> list:
        """The points as hints in the target's pixels (``[]``: none)."""
        target = target or self._target.value
        return points_as_hints(self.points, target) if target is not None else []

    @property
    def spread(self) -> float:
        return float(self._spread.value)

    # ------------------------------------------------------------ the live preview
    def schedule(self, *_) -> None:
        if self._live.value:
            self.generation += 1
            self._timer.start()

    def _on_step(self, *_) -> None:
        try:
            if self.points is not None:
                self.schedule()
        except RuntimeError:  # (the widget was closed: its Qt objects are gone)
            self._viewer.dims.events.current_step.disconnect(self._on_step)

    def _forget(self) -> None:
        self._preview, self._key = None, None

    def drop_preview(self) -> None:
        remove_ours(self._viewer, lambda m: m.get("kind") == "colour points preview")

    def preview(self) -> None:
        """Colour the slice on view with its points (every slice's and its own), at the working size, in a worker."""
        target, refs = self._target.value, self._references()
        hints = self.hints(target)
        if target is not None and hints:
            idx = current_index(self._viewer, target)
            stack = target.data.shape[:len(idx)]
            spatial = target.data.shape[len(idx):len(idx) + 2]
            try:
                hints = slice_hints(check_hints(hints, spatial, stack), int(np.ravel_multi_index(idx, stack)))
            except ValueError as e:
                self._status.value = f"preview: {e}"
                hints = []
        if target is None or not hints or self.points is None:
            self.drop_preview()
            return
        name = self._model_name()
        key = (id(target), tuple(id(r) for r in refs), name, int(self._size_of()), self.spread,
               tuple(self._viewer.dims.current_step))
        if self.jobs.busy:  # one at a time: the newest edit is previewed when this one is done
            self._timer.start()
            return
        grey = current_slice(self._viewer, target)
        prev = self._preview if key == self._key else None
        guide = [np.asarray(r.data) for r in refs]
        size, spread, rgb = int(self._size_of()), self.spread, bool(target.rgb)

        @thread_worker(ignore_errors=True)  # (JobRunner.start reports the error)
        def job(gen):
            p = prev
            if p is None:
                model = get_model(name, "auto")
                p = HintPreview(model, grey, reference=None if model.kind == "hints" else
                                (guide[0] if len(guide) == 1 else guide), size=size, rgb=rgb,
                                hint_spread=spread if model.kind != "hints" else None)
            return p, p.render(hints), gen

        self.jobs.start(job(self.generation), lambda e: setattr(self._status, "value", f"preview: {e}"),
                        returned=lambda res: self._show(res, target, key, len(hints)))

    def _show(self, res, target, key, n: int) -> None:
        p, rgb, gen = res
        self._preview, self._key = p, key
        if target not in self._viewer.layers or gen < self.shown:
            return
        self.shown = gen
        sc, tr = overlay_transform(target, p.shape, p.wshape)
        layer = add_or_update_image(self._viewer, rgb, f"{target.name} [colour points preview]",
                                    {"kind": "colour points preview", "hints": n}, rgb=True,
                                    scale=sc, translate=tr, interpolation2d="linear")
        bring_to_front(self._viewer, layer)
        if self.points is not None:
            bring_to_front(self._viewer, self.points)  # (the points stay on top, to be moved)
            self._viewer.layers.selection.active = self.points
        where = " on this slice" if target.data.ndim > 2 + bool(target.rgb) else ""
        self._status.value = f"preview: {n} colour point(s){where};\nRun for the full size"  # (two short lines)
