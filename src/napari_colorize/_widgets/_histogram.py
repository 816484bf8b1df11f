"""The histogram widget: paint an ab histogram, preview the colourisation live, run at full size.

The editing maths is in :mod:`napari_colorize.histogram_edit`; this module draws and dispatches.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from magicgui.widgets import (CheckBox, ComboBox, Container, FileEdit, FloatSlider, Label, ProgressBar, PushButton,
                              SpinBox, create_widget)
from napari.layers import Image, Shapes
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from qtpy.QtGui import QColor, QImage, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

from .. import histogram_edit as he
from ..color import NBINS
from ..inference import iter_colorize
from ..models.registry import list_models
from ._exemplar import CHECKPOINT, get_model
from ._layers import add_or_update_image, overlay_transform, query_cell, query_points, spatial_shape

PREVIEW_SIZE = 96  # default preview size: ~100 ms per stroke on 2 CPU cores with the CPU model


class HistogramCanvas(QWidget):
    """The ab chart at lightness L with the histogram drawn over it; paint with the mouse
    (left button adds, right button or 'erase' removes)."""

    changed = Signal()
    bin_picked = Signal(int, int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.hist = he.empty()
        self.L = 60.0
        self.radius = 1.0
        self.erase = False
        self.pick_mode = False  # clicks pick a bin (for the attention view) instead of painting
        self.overlay: np.ndarray | None = None  # (21, 21) weights drawn over the chart (attention of a pixel)
        self._chart = None
        self.setMinimumSize(220, 220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.set_L(self.L)

    def set_L(self, L: float) -> None:
        self.L = float(L)
        img = np.ascontiguousarray(np.round(he.ab_chart(self.L, 210) * 255).astype(np.uint8))
        self._chart_bytes = img  # keep the buffer alive for the QImage
        self._chart = QImage(img.data, img.shape[1], img.shape[0], 3 * img.shape[1], QImage.Format.Format_RGB888)
        self.update()

    def set_overlay(self, weights: np.ndarray | None) -> None:
        """Show ``weights`` (21 x 21, e.g. the bins a pixel draws from) as orange squares over the chart."""
        self.overlay = None if weights is None else np.asarray(weights, np.float64)
        self.update()

    def set_histogram(self, hist: np.ndarray) -> None:
        self.hist = np.asarray(hist, np.float64).copy()
        self.update()
        self.changed.emit()

    def _side(self) -> int:
        return min(self.width(), self.height())

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt)
        p = QPainter(self)
        side = self._side()
        p.drawImage(self.rect().adjusted(0, 0, side - self.width(), side - self.height()), self._chart)
        peak = self.hist.max()
        if peak > 0:
            cell = side / (NBINS - 1)
            p.setPen(QPen(QColor(255, 255, 255), 1.2))
            for ia, ib in zip(*np.nonzero(self.hist > peak * 0.02)):
                r = 0.55 * cell * np.sqrt(self.hist[ia, ib] / peak)
                x, y = ia * cell, (NBINS - 1 - ib) * cell
                p.drawEllipse(QPointF(x, y), r, r)
        if self.overlay is not None and self.overlay.max() > 0:
            cell = side / (NBINS - 1)
            top = self.overlay.max()
            p.setPen(QPen(QColor(255, 140, 0), 2.0))
            for ia, ib in zip(*np.nonzero(self.overlay > top * 0.05)):
                r = 0.5 * cell * np.sqrt(self.overlay[ia, ib] / top)
                p.drawRect(QRectF(ia * cell - r, (NBINS - 1 - ib) * cell - r, 2 * r, 2 * r))
        p.end()

    def stroke(self, x: float, y: float, erase: bool | None = None) -> None:
        """Apply the brush at widget position (x, y)."""
        ia, ib = he.chart_to_bins(x, y, self._side())
        self.hist = he.paint(self.hist, ia, ib, self.radius, 0.05, self.erase if erase is None else erase)
        self.update()
        self.changed.emit()

    def mousePressEvent(self, e) -> None:  # noqa: N802
        if self.pick_mode:
            ia, ib = he.chart_to_bins(e.position().x(), e.position().y(), self._side())
            self.bin_picked.emit(int(np.clip(round(ia), 0, NBINS - 1)), int(np.clip(round(ib), 0, NBINS - 1)))
            return
        self.stroke(e.position().x(), e.position().y(), self.erase or e.button() == Qt.MouseButton.RightButton)

    def mouseMoveEvent(self, e) -> None:  # noqa: N802
        if self.pick_mode:
            return
        if e.buttons() & (Qt.MouseButton.LeftButton | Qt.MouseButton.RightButton):
            self.stroke(e.position().x(), e.position().y(),
                        self.erase or bool(e.buttons() & Qt.MouseButton.RightButton))


@thread_worker
def histogram_job(model_name, device, target, hist, size, rgb, generation, attention=False):
    model = get_model(model_name, device)
    out, info = None, None
    for idx, rgb_slice, pred, info in iter_colorize(model, target, histogram=hist, size=size, rgb=rgb,
                                                    return_attention=attention):
        if out is None:
            out = np.empty(tuple(info["stack_shape"]) + rgb_slice.shape, np.float32)
        out[idx] = rgb_slice
        yield ("progress", info["done"], info["n_slices"])
    return {"rgb": out, "generation": generation, "attention": pred.attention.get("pixel_to_bin"), "model": model.name,
            "working_shape": info["working_shape"]}


class HistogramWidget(Container):
    """Paint or pick an ab histogram and colourise a greyscale layer with a histogram model."""

    def __init__(self, napari_viewer) -> None:
        self._viewer = napari_viewer
        self.canvas = HistogramCanvas()
        self._target = create_widget(annotation=Image, label="grey target")
        self._model = ComboBox(label="model", choices=self._model_choices)
        self._checkpoint = FileEdit(label="checkpoint", filter="*.safetensors", visible=False)
        self._device = ComboBox(label="device", choices=["auto", "cpu", "cuda", "mps"], value="auto")
        self._lightness = FloatSlider(label="chart L", value=60, min=5, max=95)
        self._brush = SpinBox(label="brush size (bins)", value=1, min=1, max=6)
        self._erase = CheckBox(text="erase")
        self._clear = PushButton(text="Clear")
        self._normalise = PushButton(text="Normalise")
        self._source = create_widget(annotation=Image, label="colour source")
        self._roi = create_widget(annotation=Optional[Shapes], label="region (Shapes)")
        self._from_layer = PushButton(text="Histogram from source")
        self._preset = ComboBox(label="preset", choices=sorted(he.PRESETS))
        self._apply_preset = PushButton(text="Use preset")
        self._file = FileEdit(label="histogram file", filter="*.npy", mode="w")
        self._save = PushButton(text="Save")
        self._load = PushButton(text="Load")
        self._preview = CheckBox(text="live preview", value=True)
        self._preview_size = SpinBox(label="preview size", value=PREVIEW_SIZE, min=32, max=512, step=16)
        self._size = SpinBox(label="working size", value=224, min=32, max=4096, step=32)
        self._attention = CheckBox(text="add attention views (pixel -> bins, bin -> image)")
        self._pick = CheckBox(text="click the chart to pick a bin (instead of painting)")
        self._run = PushButton(text="Run")
        self._progress = ProgressBar(value=0, min=0, max=1, label="progress")
        self._status = Label(value="")
        row = lambda *w: Container(widgets=list(w), layout="horizontal", labels=False)  # noqa: E731
        super().__init__(widgets=[
            self._target, self._model, self._checkpoint, self._device, self._lightness, self._brush,
            row(self._erase, self._clear, self._normalise), self._source, self._roi, self._from_layer,
            row(self._preset, self._apply_preset), self._file, row(self._save, self._load), self._preview,
            self._preview_size,
            self._size, self._attention, self._pick, self._run, self._progress, self._status])
        self.native.layout().insertWidget(5, self.canvas)
        self._timer = QTimer(self.native)  # dies with the widget
        self._timer.setSingleShot(True)
        self._timer.setInterval(80)
        self._timer.timeout.connect(self.preview)
        self.canvas.changed.connect(self._timer.start)
        self._lightness.changed.connect(self.canvas.set_L)
        self._brush.changed.connect(lambda v: setattr(self.canvas, "radius", float(v)))
        self._erase.changed.connect(lambda v: setattr(self.canvas, "erase", bool(v)))
        self._clear.clicked.connect(lambda: self.canvas.set_histogram(he.empty()))
        self._normalise.clicked.connect(self._on_normalise)
        self._from_layer.clicked.connect(self.histogram_from_source)
        self._apply_preset.clicked.connect(lambda: self.canvas.set_histogram(he.preset(self._preset.value)))
        self._save.clicked.connect(self._on_save)
        self._load.clicked.connect(self._on_load)
        self._model.changed.connect(lambda v: setattr(self._checkpoint, "visible", v == CHECKPOINT))
        self._run.clicked.connect(self.run)
        self._pick.changed.connect(lambda v: setattr(self.canvas, "pick_mode", bool(v)))
        self.canvas.bin_picked.connect(self.show_bin)
        self.bin_attention = None  # BinAttention of the last full run (2-D targets)
        self._attention_target = None
        self._bin_query = None
        self.generation = 0
        self.shown_generation = -1
        self.preview_worker = None
        self.worker = None
        self._model_override = None
        self.last_result = None

    # ------------------------------------------------------------------ model
    def _model_choices(self, _=None):
        return list_models(kind="histogram") + [CHECKPOINT]

    def model_name(self) -> str | None:
        if self._model_override:
            return self._model_override
        if self._model.value == CHECKPOINT:
            return str(self._checkpoint.value) if str(self._checkpoint.value) not in ("", ".") else None
        return self._model.value

    # ---------------------------------------------------------------- editing
    def _on_normalise(self) -> None:
        try:
            self.canvas.set_histogram(he.normalise(self.canvas.hist))
        except ValueError as e:
            show_error(str(e))

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

    def _on_save(self) -> None:
        try:
            path = he.save(self._file.value, he.normalise(self.canvas.hist))
            show_info(f"histogram saved to {path}")
        except (ValueError, OSError) as e:
            show_error(f"cannot save the histogram: {e}")

    def _on_load(self) -> None:
        try:
            self.canvas.set_histogram(he.load(self._file.value))
        except (ValueError, OSError) as e:
            show_error(f"cannot load the histogram: {e}")

    # ------------------------------------------------------------ colourising
    def _inputs(self):
        target, name = self._target.value, self.model_name()
        if target is None:
            raise ValueError("choose a greyscale target layer")
        if name is None:
            raise ValueError("no histogram model is installed: choose a checkpoint file")
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
        data = np.asarray(target.data)
        if data.ndim > (3 if target.rgb else 2):  # a stack: preview the slice on view
            idx = tuple(int(i) for i in self._viewer.dims.current_step[: data.ndim - (3 if target.rgb else 2)])
            data = data[idx]
        sp = data.shape[:2] if target.rgb else data.shape
        size = int(self._preview_size.value)
        step = max(1, -(-max(sp) // size))  # stride to at most `size` pixels (a quick look)
        data = data[::step, ::step]
        worker = histogram_job(name, self._device.value, data, hist, size, bool(target.rgb), self.generation)
        worker.returned.connect(lambda res: self._show_preview(res, target, step))
        worker.errored.connect(lambda e: setattr(self._status, "value", f"preview failed: {e}"))
        self.preview_worker = worker
        worker.start()

    def _show_preview(self, res, target, step: int) -> None:
        if res is None or res["generation"] < self.generation or target not in self._viewer.layers:
            return  # a newer stroke is on its way: drop this one
        self.shown_generation = res["generation"]
        add_or_update_image(self._viewer, res["rgb"], f"{target.name} [histogram preview]",
                            {"kind": "preview", "model": res["model"], "stride": step}, rgb=True,
                            scale=tuple(np.asarray(target.scale[-2:]) * step), translate=tuple(target.translate[-2:]))

    def run(self) -> None:
        if self.worker is not None:
            return
        try:
            target, name, hist = self._inputs()
        except ValueError as e:
            show_error(str(e))
            return
        self._run.enabled = False
        self._status.value = "running..."
        worker = histogram_job(name, self._device.value, np.asarray(target.data), hist, int(self._size.value),
                               bool(target.rgb), -1, bool(self._attention.value))
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(lambda res: self._on_result(res, target, hist))
        worker.errored.connect(lambda e: show_error(f"colourisation failed: {e}"))
        worker.finished.connect(self._on_finished)
        self.worker = worker
        worker.start()

    def _on_progress(self, msg) -> None:
        _, done, total = msg
        self._progress.max, self._progress.value = max(1, total), done

    def _on_finished(self) -> None:
        self.worker = None
        self._run.enabled = True

    def _on_result(self, res, target, hist) -> None:
        if res is None or target not in self._viewer.layers:
            self._status.value = "the target layer was removed during the run: result discarded"
            return
        nd = res["rgb"].ndim - 1
        layer = add_or_update_image(self._viewer, res["rgb"], f"{target.name} [{res['model']}]",
                                    {"kind": "result", "model": res["model"], "histogram": hist.tolist(),
                                     "working_shape": list(res["working_shape"])}, rgb=True,
                                    scale=tuple(target.scale[-nd:]), translate=tuple(target.translate[-nd:]))
        self.last_result = res
        if self._attention.value and res["attention"] is not None and nd == 2:
            self._add_attention_views(res["attention"], target, layer.name)
        self._status.value = f"done: {layer.name}"

    # -------------------------------------------------------------- attention
    def _add_attention_views(self, att, target, name: str) -> None:
        """Concentration layer, a query point on the target (its bins are drawn on the chart) and,
        when a bin is picked on the chart, a layer of where that bin's colour goes."""
        self.bin_attention, self._attention_target, self._attention_name = att, target, name
        sc, tr = overlay_transform(target, spatial_shape(target), att.lattice)
        add_or_update_image(self._viewer, att.concentration(), f"{name} bin concentration",
                            {"kind": "concentration"}, scale=sc, translate=tr, colormap="magma", opacity=0.6,
                            visible=False, contrast_limits=(0, 1))
        self._bin_query = query_points(self._viewer, target, f"{name} bin query", "orange", {"kind": "query"},
                                       self.update_pixel_bins)
        self.update_pixel_bins()

    def update_pixel_bins(self) -> None:
        """Draw on the chart the bins the query point's pixel draws from."""
        q, target, att = self._bin_query, self._attention_target, self.bin_attention
        if att is None or q is None or len(q.data) == 0 or target not in self._viewer.layers:
            return
        self.pixel_bins = att.bins_of_pixel(*query_cell(target, q, att.lattice))
        self.canvas.set_overlay(self.pixel_bins)

    def show_bin(self, ia: int, ib: int) -> None:
        """A layer over the target: how much each pixel draws on bin (ia, ib)."""
        att, target = self.bin_attention, self._attention_target
        if att is None or target not in self._viewer.layers:
            self._status.value = "run with 'add attention views' first, then pick a bin"
            return
        where = att.pixels_of_bin(ia, ib)
        sc, tr = overlay_transform(target, spatial_shape(target), att.lattice)
        add_or_update_image(self._viewer, where, f"{self._attention_name} bin attention",
                            {"kind": "bin attention", "bin": [int(ia), int(ib)]}, scale=sc, translate=tr,
                            colormap="inferno", opacity=0.7, blending="additive",
                            contrast_limits=(0, float(where.max()) or 1.0))
        self._status.value = f"bin ({ia}, {ib}): where its colour goes"
