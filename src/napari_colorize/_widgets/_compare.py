"""Compare models on one pair: every output becomes a layer, side by side, with a table of scores."""

from __future__ import annotations

from typing import Optional

import numpy as np
from magicgui.widgets import Container, FileEdit, Label, ProgressBar, PushButton, Select, create_widget
from napari.layers import Image
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem

from ..compare import COLUMNS, iter_compare, write_csv
from ..models.registry import list_models
from ._exemplar import get_model
from ._layers import add_or_update_image


@thread_worker
def compare_job(names, target, reference, truth, rgb):
    models = [get_model(n, "auto") for n in names]
    for k, (row, image) in enumerate(iter_compare(models, np.asarray(target), reference, truth=truth, rgb=rgb), 1):
        yield ("row", k, len(names), row, image)


def grid_of(viewer):
    """napari's grid settings: ``viewer.canvas.grid`` from napari 0.9, ``viewer.grid`` before."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


class CompareWidget(Container):
    """Run several models on one target/reference pair; show them in napari's grid with a score table."""

    def __init__(self, napari_viewer) -> None:
        self._viewer = napari_viewer
        self._target = create_widget(annotation=Image, label="grey target")
        self._reference = create_widget(annotation=Image, label="colour reference")
        self._truth = create_widget(annotation=Optional[Image], label="ground truth (optional)")
        self._models = Select(label="models", choices=self._model_choices)
        self._run = PushButton(text="Compare")
        self._progress = ProgressBar(value=0, min=0, max=1, label="progress")
        self._csv = FileEdit(label="CSV file", filter="*.csv", mode="w")
        self._export = PushButton(text="Export table")
        self._status = Label(value="")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        super().__init__(widgets=[self._target, self._reference, self._truth, self._models, self._run, self._progress,
                                  self._csv, self._export, self._status])
        self.native.layout().addWidget(self.table)
        self._run.clicked.connect(self.run)
        self._export.clicked.connect(self.export)
        self.rows: list[dict] = []
        self.worker = None

    def _model_choices(self, _=None):
        return list_models(kind="exemplar")

    def run(self, names: list[str] | None = None) -> None:
        target, ref, truth = self._target.value, self._reference.value, self._truth.value
        names = list(names or self._models.value)
        if target is None or ref is None or not names:
            show_error("choose a target, a colour reference and at least one model")
            return
        if not ref.rgb:
            show_error(f"the reference layer '{ref.name}' has no colour: choose an RGB layer")
            return
        if truth is not None and (not truth.rgb or truth.data.shape[:2] != target.data.shape[-2:]):
            show_error("the ground truth must be an RGB layer of the target's size")
            return
        self.rows = []
        self.table.setRowCount(0)
        self._run.enabled = False
        worker = compare_job(names, target.data, np.asarray(ref.data), None if truth is None else np.asarray(truth.data),
                             bool(target.rgb))
        worker.yielded.connect(lambda msg: self._on_row(msg, target))
        worker.errored.connect(lambda e: show_error(f"comparison failed: {e}"))
        worker.finished.connect(self._on_finished)
        self.worker = worker
        worker.start()

    def _on_row(self, msg, target) -> None:
        _, k, n, row, image = msg
        self._progress.max, self._progress.value = n, k
        self.rows.append(row)
        r = self.table.rowCount()
        self.table.insertRow(r)
        for c, key in enumerate(COLUMNS):
            v = row[key]
            self.table.setItem(r, c, QTableWidgetItem(v if isinstance(v, str) else ("-" if np.isnan(v) else f"{v:.3f}")))
        if target in self._viewer.layers:
            add_or_update_image(self._viewer, image, f"{target.name} [{row['model']}] (compare)",
                                {"kind": "compare", **{k: (v if isinstance(v, str) else float(v))
                                                       for k, v in row.items()}},
                                rgb=True, scale=tuple(target.scale[-2:]), translate=tuple(target.translate[-2:]))

    def _on_finished(self) -> None:
        self.worker = None
        self._run.enabled = True
        grid_of(self._viewer).enabled = True
        self._status.value = f"{len(self.rows)} model(s) compared"

    def export(self) -> None:
        if not self.rows:
            show_error("nothing to export yet: run a comparison first")
            return
        try:
            show_info(f"table written to {write_csv(self.rows, self._csv.value)}")
        except OSError as e:
            show_error(f"cannot write the table: {e}")
