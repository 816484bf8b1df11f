"""The exemplar widget's 'Suggest a reference' panel: candidate references as thumbnails to pick from.

It ranks the viewer's colour layers (and a folder's images) for the grey target and shows the best
as thumbnails to pick from. The ranking is the
library's (:func:`napari_colorize.suggest.suggest_references`); this module moves data and clicks."""

from __future__ import annotations

import textwrap

from pathlib import Path

import numpy as np
from magicgui.widgets import Container, FileEdit, Label, PushButton
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QSize
from qtpy.QtGui import QIcon, QImage, QPixmap
from qtpy.QtWidgets import QHBoxLayout, QToolButton, QWidget

from ._jobs import JobRunner, RunsJobs
from ._layers import current_slice, is_ours
from ._workers import Suggested, suggest_job


class SuggestPanel(RunsJobs, Container):
    """Folder (optional), a Suggest button, and a row of clickable thumbnails."""

    def __init__(self, viewer, target_picker, reference_picker, top: int = 4) -> None:
        self._viewer, self._target, self._reference, self.top = viewer, target_picker, reference_picker, top
        self._folder = FileEdit(label="also from folder", mode="d", value="")
        self._go = PushButton(text="Suggest references")
        self._status = Label(value="ranks the viewer's colour layers (and the folder's images)")
        # (a long ranking must not widen the dock: lines broken here; a word-wrapped label's height-for-width
        # made the section inside the scrolling dock keep a stale, too small height)
        super().__init__(widgets=[self._folder, self._go, self._status])
        self.row = QWidget()
        self.row_layout = QHBoxLayout(self.row)
        self.row_layout.setContentsMargins(0, 0, 0, 0)
        self.native.layout().addWidget(self.row)
        self.buttons: list[QToolButton] = []
        self.jobs = JobRunner([self._go], status=self._status)
        self.last: Suggested | None = None
        self._layers: list = []  # the colour layers ranked by the last suggestion (a pick selects one)
        self._go.clicked.connect(self.suggest)

    def _candidates(self):
        target = self._target.value
        layers = [l for l in self._viewer.layers
                  if getattr(l, "rgb", False) and not is_ours(l) and l is not target and l.data.ndim == 3]
        folder = str(self._folder.value or "")
        files = []
        if folder and folder != "." and Path(folder).is_dir():
            from ..suggest import candidate_files

            files = candidate_files(folder)
        return target, layers, files

    def suggest(self) -> None:
        if self.jobs.busy:
            return
        target, layers, files = self._candidates()
        if target is None:
            show_error("choose a greyscale target layer first")
            return
        if not layers and not files:
            show_error("no candidates: add colour image layers, or choose a folder of images")
            return
        self._layers = layers
        worker = suggest_job(current_slice(self._viewer, target), [np.asarray(l.data) for l in layers],
                             [l.name for l in layers], files, self.top)
        self.jobs.start(worker, "suggestions failed", text=f"ranking {len(layers) + len(files)} candidate(s)...",
                        returned=self._show)

    def _show(self, res: Suggested) -> None:
        self.last = res
        for b in self.buttons:
            self.row_layout.removeWidget(b)
            b.deleteLater()
        self.buttons = []
        for s in res.ranking:
            thumb = np.ascontiguousarray(res.thumbnails[s.index])
            h, w = thumb.shape[:2]
            img = QImage(thumb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
            b = QToolButton()
            b.setIcon(QIcon(QPixmap.fromImage(img)))
            b.setIconSize(QSize(72, 72))
            b.setMinimumSize(QSize(76, 76))  # (a crowded dock squeezes a row to its minimum: keep the pictures)
            label = s.name.split(":", 1)[1]
            b.setToolTip(f"{Path(label).name if s.name.startswith('file:') else label}\nscore {s.score:.3f}")
            b.clicked.connect(lambda _=False, s=s: self.pick(s))
            self.row_layout.addWidget(b)
            self.buttons.append(b)
        self.row_layout.addStretch(1)
        names = [Path(s.name.split(":", 1)[1]).name for s in res.ranking]
        self._status.value = "\n".join(textwrap.wrap("best first: " + ", ".join(names) + " (click one to use it)",
                                                    48))
        for e in res.errors:
            show_info(f"skipped {e}")

    def pick(self, s) -> None:
        """Use suggestion ``s`` as the reference: a layer is selected in the picker, a file is opened
        as a new layer first (the user's own layers are never changed)."""
        kind, name = s.name.split(":", 1)
        if kind == "layer":
            layer = self._layers[s.index]
        else:
            from ..io import read_image

            data = read_image(name)
            layer = self._viewer.add_image(np.asarray(data), name=Path(name).stem, rgb=True)
        self._reference.value = layer
        self._status.value = f"reference: {layer.name}"
