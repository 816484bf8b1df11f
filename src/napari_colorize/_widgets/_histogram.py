"""The histogram widget: paint an ab histogram, preview the colourisation live, run at full size.

The editing maths is in :mod:`napari_colorize.histogram_edit`; this module draws and dispatches.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSlider, Label, ProgressBar, PushButton, SpinBox
from napari.layers import Shapes
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from qtpy.QtGui import QColor, QFont, QImage, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

from .. import histogram_edit as he
from ..color import AB_SCALE, NBINS
from ..provenance import named
from ._layers import (DefaultPicks, add_or_update_image, bring_to_front, current_slice, layer_picker,
                      overlay_transform, query_cell, query_points, remove_ours, score_colour, score_grey, spatial_shape)
from ._jobs import JobRunner, RunsJobs
from ._picker import ModelPicker
from ._sections import Collapsible, ask_path, make_scrollable, wrap_label
from ._workers import Colourised, colorize_job

PREVIEW_SIZE = 96  # default preview size (its time per stroke: docs/PLUGIN.md, "Live preview")
AB_TICKS = (-100, -50, 0, 50, 100)  # a*, b* values marked on the chart's axes


class HistogramCanvas(QWidget):
    """The ab chart at lightness L with the histogram drawn over it, with labelled a* and b* axes and the grey
    centre marked; paint with the mouse (left button adds, right button or 'erase' removes)."""

    changed = Signal()
    bin_picked = Signal(int, int)
    MARGINS = (30, 16, 18, 16)  # left (b* ticks), top (b* title), right (a* title), bottom (a* ticks), pixels

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.hist = he.empty()
        self.L = 60.0
        self.radius = 1.0
        self.erase = False
        self.pick_mode = False  # clicks pick a bin (for the attention view) instead of painting
        self.overlay: np.ndarray | None = None  # (21, 21) weights drawn over the chart (attention of a pixel)
        self._chart = None
        self._chart_bytes: np.ndarray | None = None  # the chart's pixels (the QImage reads them)
        left, top, right, bottom = self.MARGINS
        self.setMinimumSize(190 + left + right, 190 + top + bottom)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setToolTip("ab colours at lightness 'chart L'; the centre (a* = b* = 0) is grey.\n"
                        "Left button paints, right button erases.")
        self.set_L(self.L)

    def sizeHint(self):  # noqa: N802 (Qt)
        return self.minimumSize()

    def set_L(self, L: float) -> None:
        self.L = float(L)
        img = np.ascontiguousarray(np.round(he.ab_chart(self.L, 210) * 255).astype(np.uint8))
        self._chart_bytes = img  # keep the buffer alive for the QImage
        self._chart = QImage(img.data, img.shape[1], img.shape[0], 3 * img.shape[1], QImage.Format.Format_RGB888)
        self.update()

    def set_overlay(self, weights: np.ndarray | None) -> None:
        """Show ``weights`` (21 x 21, e.g. the bins a pixel draws from) as orange squares over the chart;
        None clears them."""
        self.overlay = None if weights is None else np.asarray(weights, np.float64)
        self.update()

    def set_histogram(self, hist: np.ndarray) -> None:
        self.hist = np.asarray(hist, np.float64).copy()
        self.update()
        self.changed.emit()

    # ------------------------------------------------------------- geometry
    def chart_rect(self) -> QRectF:
        """Where the square chart is drawn, inside the axis margins."""
        left, top, right, bottom = self.MARGINS
        side = max(10, min(self.width() - left - right, self.height() - top - bottom))
        return QRectF(left, top, side, side)

    def bin_at(self, x: float, y: float) -> tuple[float, float]:
        """Fractional (a, b) bin under widget position (x, y)."""
        r = self.chart_rect()
        return he.chart_to_bins(x - r.left(), y - r.top(), r.width())

    def pos_of_bin(self, ia: float, ib: float) -> QPointF:
        """Widget position of bin (ia, ib) (bin 0 on the chart's left / bottom edge, bin 20 on the right / top)."""
        r = self.chart_rect()
        cell = r.width() / (NBINS - 1)
        return QPointF(r.left() + ia * cell, r.top() + (NBINS - 1 - ib) * cell)

    # -------------------------------------------------------------- drawing
    def paintEvent(self, event) -> None:  # noqa: N802 (Qt)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = self.chart_rect()
        p.drawImage(r, self._chart)
        cell = r.width() / (NBINS - 1)
        self._draw_axes(p, r)
        peak = self.hist.max()
        if peak > 0:
            p.setPen(QPen(QColor(255, 255, 255), 1.2))
            for ia, ib in zip(*np.nonzero(self.hist > peak * 0.02)):
                rad = 0.55 * cell * np.sqrt(self.hist[ia, ib] / peak)
                p.drawEllipse(self.pos_of_bin(ia, ib), rad, rad)
        if self.overlay is not None and self.overlay.max() > 0:
            top = self.overlay.max()
            p.setPen(QPen(QColor(255, 140, 0), 2.0))
            for ia, ib in zip(*np.nonzero(self.overlay > top * 0.05)):
                rad = 0.5 * cell * np.sqrt(self.overlay[ia, ib] / top)
                c = self.pos_of_bin(ia, ib)
                p.drawRect(QRectF(c.x() - rad, c.y() - rad, 2 * rad, 2 * rad))
        p.end()

    def _draw_axes(self, p: QPainter, r: QRectF) -> None:
        """Ticks and values of a* (below) and b* (left) in CIELAB units, the axis names, and the grey centre."""
        font = QFont(self.font())
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        p.setFont(font)
        fg = self.palette().windowText().color()
        centre = self.pos_of_bin((NBINS - 1) / 2, (NBINS - 1) / 2)
        p.setPen(QPen(QColor(0, 0, 0, 90), 1.0, Qt.PenStyle.DashLine))  # a* = 0 and b* = 0
        p.drawLine(QPointF(r.left(), centre.y()), QPointF(r.right(), centre.y()))
        p.drawLine(QPointF(centre.x(), r.top()), QPointF(centre.x(), r.bottom()))
        p.setPen(QPen(QColor(0, 0, 0), 1.5))
        p.setBrush(QColor(128, 128, 128))
        p.drawEllipse(centre, 3.5, 3.5)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawText(QRectF(centre.x() + 5, centre.y() + 2, 40, 14), Qt.AlignmentFlag.AlignLeft, "grey")
        p.setPen(QPen(fg, 1.0))
        for v in AB_TICKS:
            k = (v / AB_SCALE + 1) * (NBINS - 1) / 2  # the bin of a*, b* = v (normalised ab = v / AB_SCALE)
            x = self.pos_of_bin(k, 0).x()
            p.drawLine(QPointF(x, r.bottom()), QPointF(x, r.bottom() + 3))
            p.drawText(QRectF(x - 16, r.bottom() + 3, 32, 12), Qt.AlignmentFlag.AlignHCenter, str(v))
            y = self.pos_of_bin(0, k).y()
            p.drawLine(QPointF(r.left() - 3, y), QPointF(r.left(), y))
            p.drawText(QRectF(0, y - 6, r.left() - 4, 12),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, str(v))
        bold = QFont(font)
        bold.setBold(True)
        p.setFont(bold)
        p.drawText(QRectF(r.right() + 2, r.bottom() - 6, 20, 14), Qt.AlignmentFlag.AlignLeft, "a*")
        p.drawText(QRectF(r.left() - 14, r.top() - 16, 28, 14), Qt.AlignmentFlag.AlignHCenter, "b*")

    # ---------------------------------------------------------------- mouse
    def stroke(self, x: float, y: float, erase: bool | None = None) -> None:
        """Apply the brush at widget position (x, y)."""
        ia, ib = self.bin_at(x, y)
        self.hist = he.paint(self.hist, ia, ib, self.radius, 0.05, self.erase if erase is None else erase)
        self.update()
        self.changed.emit()

    def mousePressEvent(self, e) -> None:  # noqa: N802
        if self.pick_mode:
            ia, ib = self.bin_at(e.position().x(), e.position().y())
            self.bin_picked.emit(int(np.clip(round(ia), 0, NBINS - 1)), int(np.clip(round(ib), 0, NBINS - 1)))
            return
        self.stroke(e.position().x(), e.position().y(), self.erase or e.button() == Qt.MouseButton.RightButton)

    def mouseMoveEvent(self, e) -> None:  # noqa: N802
        if self.pick_mode:
            return
        if e.buttons() & (Qt.MouseButton.LeftButton | Qt.MouseButton.RightButton):
            self.stroke(e.position().x(), e.position().y(),
                        self.erase or bool(e.buttons() & Qt.MouseButton.RightButton))


class HistogramWidget(RunsJobs, Container):
    """Paint or pick an ab histogram and colourise a greyscale layer with a histogram model.

    The essentials stay on view (target, model, chart, brush, presets, Run); the colour source, the file
    and the options fold into collapsible sections, so two docked widgets fit a laptop screen."""

    def __init__(self, napari_viewer) -> None:
        self._viewer = napari_viewer
        self.canvas = HistogramCanvas()
        self._target = layer_picker(napari_viewer, "grey target")
        self.picker = ModelPicker(("histogram",))
        p = self.picker
        self._model, self._checkpoint, self._device, self._size = p.model, p.checkpoint, p.device, p.size
        self._lightness = FloatSlider(label="chart L", value=60, min=5, max=95)
        self._brush = SpinBox(label="brush", value=1, min=1, max=6, tooltip="brush size, in bins")
        self._erase = CheckBox(text="erase")
        self._clear = PushButton(text="Clear")
        self._normalise = PushButton(text="Normalise")
        self._source = layer_picker(napari_viewer, "colour source")
        self._roi = layer_picker(napari_viewer, "region (Shapes)", kind=Shapes, nullable=True)
        self._from_layer = PushButton(text="Histogram from source")
        self._preset = ComboBox(label="preset", choices=sorted(he.PRESETS))
        self._apply_preset = PushButton(text="Use preset")
        self._save = PushButton(text="Save...")
        self._load = PushButton(text="Load...")
        self._preview = CheckBox(text="live preview", value=True)
        self._preview_size = SpinBox(label="preview size", value=PREVIEW_SIZE, min=32, max=512, step=16)
        self._attention = CheckBox(text="add attention views (pixel -> bins, bin -> image)")
        self._pick = CheckBox(text="click the chart to pick a bin (instead of painting)")
        self._run = PushButton(text="Run")
        self._progress = ProgressBar(value=0, min=0, max=1, label="progress")
        self._status = Label(value="")
        row = lambda *w: Container(widgets=list(w), layout="horizontal", labels=False)  # noqa: E731
        brush_label = Label(value="brush")
        super().__init__(widgets=[
            self._target, self._model, self._checkpoint, self._lightness,
            row(brush_label, self._brush, self._erase, self._clear, self._normalise),
            row(self._preset, self._apply_preset), row(self._preview, self._run), self._progress, self._status])
        for c in (self, *[w for w in self if isinstance(w, Container)]):
            c.native.layout().setSpacing(2)
            c.margins = (0, 0, 0, 0) if c is not self else (4, 2, 4, 2)
        self.native.layout().insertWidget(3, self.canvas)
        # folded parts: magicgui containers in Qt sections (reset_choices reaches them through self._folded)
        self._folded = [Container(widgets=[self._source, self._roi, self._from_layer]), row(self._save, self._load),
                        Container(widgets=[self._device, self._preview_size, self._size, self._attention, self._pick])]
        self.sections = {key: Collapsible(title, box) for key, title, box in zip(
            ("source", "file", "options"),
            ("Colour from a layer", "Save / load", "Options and attention views"), self._folded)}
        for sec in self.sections.values():
            self.native.layout().addWidget(sec)
            # one section open at a time (an accordion): the widget stays about 600 px tall
            sec.button.toggled.connect(lambda on, opened=sec: on and [
                other.set_expanded(False) for other in self.sections.values() if other is not opened])
        self._timer = QTimer(self.native)  # dies with the widget
        self._timer.setSingleShot(True)
        self._timer.setInterval(80)
        self._timer.timeout.connect(self.preview)
        self.canvas.changed.connect(self._timer.start)
        self.canvas.changed.connect(self._clear_marks)
        self._lightness.changed.connect(self.canvas.set_L)
        self._brush.changed.connect(lambda v: setattr(self.canvas, "radius", float(v)))
        self._erase.changed.connect(lambda v: setattr(self.canvas, "erase", bool(v)))
        self._clear.clicked.connect(lambda: self.canvas.set_histogram(he.empty()))
        self._normalise.clicked.connect(self._on_normalise)
        self._from_layer.clicked.connect(self.histogram_from_source)
        self._apply_preset.clicked.connect(lambda: self.canvas.set_histogram(he.preset(self._preset.value)))
        self._save.clicked.connect(lambda: self.save_histogram())
        self._load.clicked.connect(lambda: self.load_histogram())
        self._run.clicked.connect(self.run)
        self._pick.changed.connect(lambda v: setattr(self.canvas, "pick_mode", bool(v)))
        self.canvas.bin_picked.connect(self.show_bin)
        self.bin_attention = None  # BinAttention of the last full run (2-D targets)
        self._attention_target = None
        self._attention_name: str | None = None  # the result layer the attention views belong to
        self._bin_query = None
        self.pixel_bins: np.ndarray | None = None  # the bins the query point's pixel draws from
        self._marks_stale = False
        self.generation = 0
        self.shown_generation = -1
        self.run_generation = -1  # the preview generation current when the last full run started
        self.preview_worker = None
        self.jobs = JobRunner([self._run], progress=self._progress, status=self._status)
        self._model_override = None  # a loaded model registered in the cache (tests, scripts)
        self.last_result = None
        self._picks = DefaultPicks()
        self._picks.add(self._target, score_grey)
        self._picks.add(self._source, lambda l: score_colour(l, self._target.value))
        self._picks.pick()
        wrap_label(self._status)  # a long message wraps, the dock keeps its width
        make_scrollable(self)  # docked with others, the widget scrolls rather than grow the window

    def reset_choices(self, *_) -> None:
        """napari calls this when layers change: refresh the pickers, keep them on sensible layers."""
        def reset() -> None:
            super(HistogramWidget, self).reset_choices()
            for box in getattr(self, "_folded", ()):
                box.reset_choices()

        picks = getattr(self, "_picks", None)
        if picks is None:
            reset()
        else:
            picks.reset(reset)

    # ------------------------------------------------------------------ model
    def model_name(self) -> str | None:
        return self._model_override or self.picker.name()

    # ---------------------------------------------------------------- editing
    def _on_normalise(self) -> None:
        try:
            self.canvas.set_histogram(he.normalise(self.canvas.hist))
        except ValueError as e:
            show_error(str(e))

    def _clear_marks(self) -> None:
        """The orange bin marks belong to the run they came from: a new histogram (or run) clears them."""
        if self.canvas.overlay is not None:
            self.canvas.set_overlay(None)
        self._marks_stale = self.bin_attention is not None

    def histogram_from_source(self) -> None:
        layer, roi = self._source.value, self._roi.value
        if layer is None or not layer.rgb:
            show_error("choose an RGB layer as the colour source")
            return
        data = np.asarray(layer.data)
        mask = None
        if roi is not None and len(roi.data):
            mask = roi.to_masks(mask_shape=data.shape[:2]).any(0)
        try:
            self.canvas.set_histogram(he.from_region(data, mask))
        except ValueError as e:
            show_error(str(e))

    def save_histogram(self, path=None) -> None:
        """Save the (normalised) histogram as .npy; without ``path``, ask with a save dialog."""
        path = path or ask_path("w", "Save the histogram", "NumPy histogram (*.npy)", self.native)
        if not path:
            return
        try:
            path = he.save(path, he.normalise(self.canvas.hist))
            show_info(f"histogram saved to {path}")
        except (ValueError, OSError) as e:
            show_error(f"cannot save the histogram: {e}")

    def load_histogram(self, path=None) -> None:
        """Load a (21, 21) .npy histogram; without ``path``, ask with an open dialog."""
        path = path or ask_path("r", "Load a histogram", "NumPy histogram (*.npy)", self.native)
        if not path:
            return
        try:
            self.canvas.set_histogram(he.load(path))
        except (ValueError, OSError) as e:
            show_error(f"cannot load the histogram: {e}")

    # ------------------------------------------------------------ colourising
    def _inputs(self):
        target, name = self._target.value, self.model_name()
        if target is None:
            raise ValueError("choose a greyscale target layer")
        if name is None:
            raise ValueError("no histogram model is installed: choose a checkpoint file")
        source = self._source.value
        if self.canvas.hist.sum() <= 0 and source is not None and source.rgb:
            # nothing painted yet: start from the colour source, as "From layer" would
            self.histogram_from_source()
            if self.canvas.hist.sum() > 0:
                show_info(f"the histogram was empty: it was taken from '{source.name}' (paint to change it)")
        hist = he.normalise(self.canvas.hist)
        return target, name, hist

    def preview(self) -> None:
        """Colourise a downscaled copy (current slice) with the current histogram; stale results are dropped."""
        if not self._preview.value or self.canvas.hist.sum() <= 0:
            return
        try:
            target, name, hist = self._inputs()
        except ValueError:
            return
        self.generation += 1
        data = current_slice(self._viewer, target)  # a stack: preview the slice on view (only it is read)
        sp = data.shape[:2] if target.rgb else data.shape
        size = int(self._preview_size.value)
        step = max(1, -(-max(sp) // size))  # stride to at most `size` pixels (a quick look)
        data = data[::step, ::step]
        worker = colorize_job(name, self._device.value, data, histogram=hist, size=size, rgb=bool(target.rgb),
                              generation=self.generation)
        worker.returned.connect(lambda res: self._show_preview(res, target, step))
        worker.errored.connect(lambda e: setattr(self._status, "value", f"preview failed: {e}"))
        self.preview_worker = worker
        worker.start()

    def _show_preview(self, res: Colourised, target, step: int) -> None:
        if res is None or res.generation < self.generation or target not in self._viewer.layers:
            return  # a newer stroke is on its way: drop this one
        self.shown_generation = res.generation
        layer = add_or_update_image(self._viewer, res.rgb, f"{target.name} [histogram preview]",
                                    {"kind": "preview", "model": res.model, "stride": step}, rgb=True,
                                    scale=tuple(np.asarray(target.scale[-2:]) * step),
                                    translate=tuple(target.translate[-2:]), interpolation2d="linear")
        remove_ours(self._viewer, lambda m: m.get("kind") == "preview", keep=[layer])  # (of other targets)
        # painting must show: the preview goes on top of everything, the full-size result included, unless
        # a full run was started after this stroke (its result is the newer picture)
        if res.generation > self.run_generation:
            bring_to_front(self._viewer, layer)

    def run(self) -> None:
        if self.jobs.busy:
            return
        try:
            target, name, hist = self._inputs()
        except ValueError as e:
            show_error(str(e))
            return
        self.canvas.set_overlay(None)
        self._timer.stop()  # the full run supersedes a pending preview
        self.run_generation = self.generation
        worker = colorize_job(name, self._device.value, np.asarray(target.data), histogram=hist,
                              size=int(self._size.value), attention=bool(self._attention.value),
                              rgb=bool(target.rgb))
        self.jobs.start(worker, "colourisation failed", text="running...",
                        returned=lambda res: self._on_result(res, target, hist))

    def _on_result(self, res: Colourised, target, hist) -> None:
        if res is None or target not in self._viewer.layers:
            self._status.value = "the target layer was removed during the run: result discarded"
            return
        nd = res.rgb.ndim - 1
        layer = add_or_update_image(self._viewer, res.rgb, f"{target.name} [{res.model}]",
                                    {"kind": "result", "model": res.model, "histogram": hist.tolist(),
                                     "working_shape": list(res.working_shape)}, rgb=True,
                                    scale=tuple(target.scale[-nd:]), translate=tuple(target.translate[-nd:]),
                                    provenance=named(res.provenance, target=f"layer '{target.name}'", files=False)
                                    if res.provenance else None)
        bring_to_front(self._viewer, layer)  # the full-size result over the preview; the next stroke swaps back
        self.last_result = res
        self._status.value = f"done: {layer.name}"
        # our attention views of an earlier run are stale (the one "bin attention" layer shows an old bin)
        remove_ours(self._viewer, lambda m: m.get("widget") == "histogram" and (
            m.get("kind") == "bin attention" or not self._attention.value or res.is_stack
            or m.get("target") != target.name))
        if self._attention.value:
            att = res.attention.get("pixel_to_bin")
            if att is not None and not res.is_stack:
                self._marks_stale = False
                self._add_attention_views(att, target, layer.name)
            else:
                msg = "attention views are not available for " + ("a stack" if res.is_stack else f"'{res.model}'")
                show_info(msg)
                self._status.value = f"done: {layer.name}; {msg}"

    # -------------------------------------------------------------- attention
    def _add_attention_views(self, att, target, name: str) -> None:
        """Concentration layer, a query point on the target (its bins are drawn on the chart) and,
        when a bin is picked on the chart, a layer of where that bin's colour goes."""
        self.bin_attention, self._attention_target, self._attention_name = att, target, name
        mine = {"widget": "histogram", "target": target.name}
        conc = att.on_pixels(att.concentration())  # (on the working image's pixels: covers the target exactly)
        sc, tr = overlay_transform(target, spatial_shape(target), conc.shape)
        add_or_update_image(self._viewer, conc, "bin concentration",
                            {"kind": "concentration", "result": name, **mine}, scale=sc, translate=tr,
                            colormap="magma", opacity=0.6, visible=False, contrast_limits=(0, 1),
                            interpolation2d="linear")
        self._bin_query = query_points(self._viewer, target, "bin point", "orange", {"kind": "query", **mine},
                                       self.update_pixel_bins)
        self.update_pixel_bins()

    def update_pixel_bins(self) -> None:
        """Draw on the chart the bins the query point's pixel draws from."""
        q, target, att = self._bin_query, self._attention_target, self.bin_attention
        if att is None or q is None or len(q.data) == 0 or target not in self._viewer.layers:
            return
        if self._marks_stale:
            self._status.value = "the histogram changed since the run: Run again to see a pixel's bins"
            return
        self.pixel_bins = att.bins_of_pixel(*query_cell(target, q, att.lattice, att.cell_centre))
        self.canvas.set_overlay(self.pixel_bins)

    def show_bin(self, ia: int, ib: int) -> None:
        """A layer over the target: how much each pixel draws on bin (ia, ib)."""
        att, target = self.bin_attention, self._attention_target
        if att is None or target not in self._viewer.layers:
            self._status.value = "run with 'add attention views' first, then pick a bin"
            return
        where = att.on_pixels(att.pixels_of_bin(ia, ib))  # (on the working image's pixels, as the concentration)
        sc, tr = overlay_transform(target, spatial_shape(target), where.shape)
        add_or_update_image(self._viewer, where, "bin attention",
                            {"kind": "bin attention", "bin": [int(ia), int(ib)], "result": self._attention_name,
                             "widget": "histogram", "target": target.name},
                            scale=sc, translate=tr, colormap="inferno", opacity=0.7, blending="additive",
                            interpolation2d="linear",
                            contrast_limits=(0, float(where.max()) or 1.0))
        self._status.value = f"bin ({ia}, {ib}): where its colour goes"
