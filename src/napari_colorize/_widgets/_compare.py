"""Compare models on one pair: every output becomes a layer, laid out side by side with a label, and a table of scores.

The outputs are laid out as a contact sheet below the layers on view (:func:`napari_colorize.compare.sheet_layout`)
rather than in napari's grid mode: the grid gives every layer a tile showing the *whole* scene, so a reference
placed beside the target (as the samples do) shrinks every tile to a fraction of its size.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import Container, FileEdit, Label, ProgressBar, PushButton, Select
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from ..compare import COLUMNS, sheet_layout, write_csv
from ..models.registry import comparison_models
from ._layers import (OURS, DefaultPicks, add_or_update_image, colour_layers, find_ours, free_name, is_ours, layer_picker,
                      score_colour, score_grey, score_truth, spatial_shape)
from ._jobs import JobRunner, RunsJobs, refuse
from ._state import SaveGuard
from ._picker import model_names
from ._sections import cap_height, make_scrollable, wrap_label
from ._workers import CompareRow, compare_job

# short table headers and decimals per column of napari_colorize.compare.COLUMNS
HEADERS = {"model": "model", "HIS vs reference": "HIS", "colourfulness": "colourf.", "SSIM": "SSIM",
           "PSNR dB": "PSNR", "seconds": "s"}
DECIMALS = {"HIS vs reference": 3, "colourfulness": 1, "SSIM": 3, "PSNR dB": 1, "seconds": 1}
TOOLTIPS = {"HIS vs reference": "histogram intersection with the reference's colours (1 = same colours)",
            "colourfulness": "Hasler-Suesstrunk colourfulness", "SSIM": "structural similarity to the ground truth",
            "PSNR dB": "peak signal-to-noise ratio against the ground truth, dB", "seconds": "run time, seconds"}


LABELS = "compare labels"


def compare_name(model: str) -> str:
    """Layer name of a compared output: short, the model first."""
    return f"{model} (compare)"


def format_score(key: str, v) -> str:
    if isinstance(v, str):
        return v
    return "-" if v is None or np.isnan(v) else f"{v:.{DECIMALS.get(key, 3)}f}"


def _is_compare_layer(layer) -> bool:
    return is_ours(layer) and layer.metadata[OURS].get("kind") in ("compare", "labels")


class CompareWidget(RunsJobs, Container):
    """Run several models on one target/reference pair; lay their outputs out side by side, labelled, with a
    score table."""

    def __init__(self, napari_viewer) -> None:
        self._viewer = napari_viewer
        self._target = layer_picker(napari_viewer, "grey target")
        self._reference = layer_picker(napari_viewer, "colour reference")
        self._truth = layer_picker(napari_viewer, "truth (optional)", nullable=True)
        self._more = Select(label="more references", choices=lambda _w: colour_layers(
            napari_viewer, exclude=(self._target.value, self._reference.value, self._truth.value)), value=[])
        self._more.tooltip = "more colour references (ctrl-click): each pixel may take colour from any of them"
        self._models = Select(label="models", choices=lambda _w: model_names("exemplar", "histogram"))
        self._models.value = self.default_models()
        self._models.native.setMaximumHeight(140)
        self._run = PushButton(text="Compare")
        self._progress = ProgressBar(value=0, min=0, max=1, label="progress")
        self._csv = FileEdit(label="CSV file", filter="*.csv", mode="w")
        self._csv_guard = SaveGuard()  # (an existing file is replaced only when asked for twice)
        self._export = PushButton(text="Export table")
        self._status = Label(value="")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([HEADERS.get(c, c) for c in COLUMNS])
        for c, key in enumerate(COLUMNS):
            self.table.horizontalHeaderItem(c).setToolTip(TOOLTIPS.get(key, key))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        super().__init__(widgets=[self._target, self._reference, self._more, self._truth, self._models, self._run, self._progress,
                                  self._csv, self._export, self._status])
        self.native.layout().addWidget(self.table, 1)  # the table takes the room left
        self._run.clicked.connect(self.run)
        for picker in (self._target, self._reference, self._truth):  # (the more-references list leaves those out)
            picker.changed.connect(lambda _: self._more.reset_choices())
        self._export.clicked.connect(self.export)
        self.rows: list[dict] = []
        self._tiles: list[tuple[float, float]] = []  # where each output of the comparison goes (world y, x)
        self.jobs = JobRunner([self._run], progress=self._progress, status=self._status)
        self._picks = DefaultPicks()
        self._picks.add(self._target, score_grey)
        self._picks.add(self._reference, lambda l: score_colour(l, self._target.value))
        self._picks.add(self._truth, lambda l: score_truth(l, self._target.value, self._reference.value))
        self._picks.pick()
        wrap_label(self._status)  # a long message wraps, the dock keeps its width
        cap_height(self._more, 72)  # (its row: after the container holds it)
        make_scrollable(self)  # docked with others, the widget scrolls rather than grow the window

    def reset_choices(self, *_) -> None:
        """napari calls this when layers change: refresh the pickers, keep them on sensible layers."""
        picks = getattr(self, "_picks", None)
        if picks is None:
            super().reset_choices()
        else:
            picks.reset(super().reset_choices)

    def default_models(self) -> list[str]:
        """A sensible first comparison: the shipped networks and the classic baselines (the registry's
        :data:`~napari_colorize.models.registry.COMPARISON`)."""
        return comparison_models()

    def run(self, names: list[str] | None = None) -> None:
        target, ref, truth = self._target.value, self._reference.value, self._truth.value
        names = list(names or self._models.value)
        if target is None or ref is None or not names:
            show_error("choose a target, a colour reference and at least one model")
            return
        refs = [ref] + [l for l in (self._more.value or []) if l is not ref and l in self._viewer.layers]
        for r in refs:
            if not r.rgb:
                show_error(f"the reference layer '{r.name}' has no colour: choose an RGB layer")
                return
        if truth is not None and (not truth.rgb or truth.data.shape[:2] != target.data.shape[-2:]):
            show_error("the ground truth must be an RGB layer of the target's size")
            return
        self.rows = []
        self.table.setRowCount(0)
        for layer in [l for l in self._viewer.layers if _is_compare_layer(l)]:
            if layer.metadata[OURS].get("model") not in names:  # a new comparison replaces the last one
                self._viewer.layers.remove(layer)
        self._plan_sheet(len(names), target)
        guide = np.asarray(ref.data) if len(refs) == 1 else [np.asarray(r.data) for r in refs]
        worker = compare_job(names, target.data, guide,
                             None if truth is None else np.asarray(truth.data), bool(target.rgb))
        self.jobs.start(worker, "comparison failed", text=f"comparing {len(names)} model(s)...",
                        yielded=lambda msg: self._on_row(msg, target), finished=self._on_finished)

    def _on_row(self, msg: CompareRow, target) -> None:
        row = msg.row
        self.rows.append(row)
        r = self.table.rowCount()
        self.table.insertRow(r)
        for c, key in enumerate(COLUMNS):
            self.table.setItem(r, c, QTableWidgetItem(format_score(key, row[key])))
        if target in self._viewer.layers:
            y, x = self._tiles[msg.done - 1]
            add_or_update_image(self._viewer, msg.image, compare_name(row["model"]),
                                {"kind": "compare", "target": target.name,
                                 **{k: (v if isinstance(v, str) else float(v)) for k, v in row.items()}},
                                rgb=True, scale=tuple(target.scale[-2:]), translate=(y, x))
            self._label_tiles([r["model"] for r in self.rows], target)

    def _plan_sheet(self, n: int, target) -> None:
        """Where the ``n`` outputs go: a sheet of tiles of the target's size, below everything on view
        (our earlier outputs excepted), starting at the target's left edge."""
        tile = np.asarray(spatial_shape(target), float) * np.asarray(target.scale[-2:], float)
        bottoms = [float(np.asarray(l.extent.world)[1, -2]) for l in self._viewer.layers
                   if l.visible and not _is_compare_layer(l) and l.ndim >= 2]
        left = float(np.asarray(target.extent.world)[0, -1])
        gap = max(20.0, 0.1 * tile[0])  # room for the labels between rows
        self._tiles = sheet_layout(n, tuple(tile), origin=(max(bottoms, default=0.0) + gap, left), gap=(gap, 20.0))

    def _label_tiles(self, models: list[str], target) -> None:
        """Our Points layer with one text label (the model) just above each tile."""
        old = find_ours(self._viewer, LABELS)
        if old is not None:
            self._viewer.layers.remove(old)
        pts = np.array([(y, x) for y, x in self._tiles[:len(models)]], float)
        size = float(max(np.asarray(spatial_shape(target)) * np.asarray(target.scale[-2:]))) * 0.004
        self._viewer.add_points(pts, name=free_name(self._viewer, LABELS), size=size, face_color="transparent",
                                border_width=0, features={"model": models}, opacity=1.0,
                                text={"string": "{model}", "anchor": "upper_left", "size": 11, "color": "white"},
                                metadata={OURS: {"kind": "labels", "slot": LABELS}})

    def _on_finished(self) -> None:
        if self.rows:
            self._viewer.reset_view()  # fit the sheet of outputs
        self._status.value = f"{len(self.rows)} model(s) compared"

    def export(self) -> None:
        if not self.rows:
            show_error("nothing to export yet: run a comparison first")
            return
        path = str(self._csv.value)
        if path in ("", "."):
            show_error("choose a file to export the table to")
            return
        refused = self._csv_guard.check(path, self._viewer.layers)
        if refused:
            return refuse(refused, self._status, warning=self._csv_guard.pending is not None)
        try:
            show_info(f"table written to {write_csv(self.rows, path)}")
        except OSError as e:
            show_error(f"cannot write the table: {e}")
