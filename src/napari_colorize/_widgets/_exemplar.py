"""The exemplar colourisation widget: target + reference layers -> an RGB result layer.

All maths is in the library (:func:`napari_colorize.iter_colorize`); this module only moves data
between layers and a worker thread.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import (CheckBox, ComboBox, Container, FileEdit, Label, ProgressBar, PushButton, SpinBox,
                              create_widget)
from napari.layers import Image
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning

from ..inference import Cancelled, iter_colorize, lazy_colorize
from ..models.registry import list_models, load_model
from ._layers import add_or_update_image, overlay_transform, query_cell, query_points, spatial_shape

CHECKPOINT = "checkpoint file..."
_MODEL_CACHE: dict[tuple[str, str], object] = {}


def get_model(name: str, device: str):
    key = (name, device)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = load_model(name, device=device)
    return _MODEL_CACHE[key]


@thread_worker
def colorize_job(model_name: str, device: str, target, reference, size: int, attention: bool, rgb: bool):
    """Worker: yields ("progress", done, total) per slice; returns the result dict."""
    model = get_model(model_name, device)
    yield ("progress", 0, 1)
    out = None
    warnings: list[str] = []
    gen = iter_colorize(model, target, reference=reference, size=size, return_attention=attention, rgb=rgb,
                        sink=warnings)
    pred = info = None
    for idx, rgb_slice, pred, info in gen:
        if out is None:
            out = np.empty(tuple(info["stack_shape"]) + rgb_slice.shape, np.float32)
        out[idx] = rgb_slice
        yield ("progress", info["done"], info["n_slices"])  # napari's quit() takes effect here
    return {"rgb": out, "scales": info["scales"], "attention": pred.attention if attention else {},
            "working_shape": info["working_shape"], "model": model.name, "kind": model.kind,
            "warnings": warnings}


@thread_worker
def lazy_job(model_name: str, device: str, target, reference, size: int, rgb: bool):
    """Worker: sets up a lazy colourised stack (intensity range, reference features) without computing it."""
    model = get_model(model_name, device)
    yield ("progress", 0, 1)
    return {"rgb": lazy_colorize(model, target, reference=reference, size=size, rgb=rgb), "model": model.name,
            "lazy": True}


@thread_worker
def save_job(lazy, path):
    """Worker: compute every slice of a lazy result and write them to a TIFF, one slice at a time."""
    import tifffile

    n_stack = lazy.shape[:-3]
    flat = lazy.reshape((-1,) + lazy.shape[-3:])
    out = tifffile.memmap(str(path), shape=flat.shape, dtype=np.uint8, photometric="rgb")
    for i in range(flat.shape[0]):
        out[i] = np.round(np.clip(np.asarray(flat[i]), 0, 1) * 255).astype(np.uint8)
        yield ("progress", i + 1, flat.shape[0])
    out.flush()
    del out
    return {"path": str(path), "shape": tuple(n_stack) + tuple(lazy.shape[-3:])}


def is_lazy(data) -> bool:
    """Dask, zarr and other array-likes that are not in memory."""
    return not isinstance(data, np.ndarray) and hasattr(data, "shape") and hasattr(data, "dtype")


class ExemplarWidget(Container):
    """Colourise a greyscale layer guided by a colour reference layer."""

    def __init__(self, napari_viewer) -> None:
        self._viewer = napari_viewer
        self._target = create_widget(annotation=Image, label="grey target")
        self._reference = create_widget(annotation=Image, label="colour reference")
        self._model = ComboBox(label="model", choices=self._model_choices)
        self._checkpoint = FileEdit(label="checkpoint", filter="*.safetensors", visible=False)
        self._device = ComboBox(label="device", choices=["auto", "cpu", "cuda", "mps"], value="auto")
        self._size = SpinBox(label="working size", value=224, min=32, max=4096, step=32)
        self._scales = CheckBox(text="add multi-scale outputs P1-P4")
        self._attention = CheckBox(text="add attention layers")
        self._keep = CheckBox(text="keep each run as a new layer")
        self._run = PushButton(text="Run")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(value=0, min=0, max=1, label="progress")
        self._status = Label(value="")
        self._save_path = FileEdit(label="save lazy result", filter="*.tif", mode="w", visible=False)
        self._save = PushButton(text="Compute and save all", visible=False)
        super().__init__(widgets=[self._target, self._reference, self._model, self._checkpoint, self._device,
                                  self._size, self._scales, self._attention, self._keep,
                                  Container(widgets=[self._run, self._cancel], layout="horizontal", labels=False),
                                  self._progress, self._status, self._save_path, self._save])
        self._save.clicked.connect(self.save_all)
        self._model.changed.connect(self._on_model)
        self._run.clicked.connect(self.run)
        self._cancel.clicked.connect(self.cancel)
        self.worker = None
        self.last_result: dict | None = None
        self._query = None
        self._model_override: str | None = None

    # ---------------------------------------------------------------- choices
    def _model_choices(self, _=None):
        names = list_models(kind="exemplar")
        return names + [CHECKPOINT]

    def _on_model(self, value) -> None:
        self._checkpoint.visible = value == CHECKPOINT

    def model_name(self) -> str:
        if self._model_override:  # a loaded model registered in the cache (tests, scripts)
            return self._model_override
        if self._model.value == CHECKPOINT:
            return str(self._checkpoint.value)
        return self._model.value

    # -------------------------------------------------------------------- run
    def _check_inputs(self):
        target, ref = self._target.value, self._reference.value
        if target is None or ref is None:
            raise ValueError("choose a greyscale target layer and a colour reference layer")
        if target is ref:
            raise ValueError("the target and the reference are the same layer")
        if not ref.rgb:
            raise ValueError(f"the reference layer '{ref.name}' has no colour: choose an RGB layer")
        if target.rgb:
            show_warning(f"'{target.name}' is an RGB layer: its lightness is used as the grey target")
        return target, ref

    def run(self) -> None:
        if self.worker is not None:
            return
        try:
            target, ref = self._check_inputs()
        except ValueError as e:
            show_error(str(e))
            return
        self._status.value = "running..."
        self._progress.value = 0
        self._run.enabled, self._cancel.enabled = False, True
        settings = {"model": self.model_name(), "device": self._device.value, "size": int(self._size.value),
                    "reference": ref.name, "target": target.name}
        lazy = is_lazy(target.data) and target.data.ndim > (3 if target.rgb else 2)
        if lazy:  # a dask/zarr stack stays lazy: slices are colourised when viewed
            worker = lazy_job(settings["model"], settings["device"], target.data, np.asarray(ref.data),
                              settings["size"], bool(target.rgb))
        else:
            worker = colorize_job(settings["model"], settings["device"], np.asarray(target.data),
                                  np.asarray(ref.data), settings["size"], bool(self._attention.value),
                                  bool(target.rgb))
        worker.yielded.connect(self._on_yield)
        worker.returned.connect(lambda res: self._on_result(res, target, ref, settings))
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        worker.start()

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()
            self._status.value = "cancelling..."

    def _on_yield(self, msg) -> None:
        _, done, total = msg
        self._progress.max = max(1, total)
        self._progress.value = done
        self._status.value = f"slice {done} of {total}" if total > 1 else "colourising..."

    def _on_error(self, exc) -> None:
        if isinstance(exc, Cancelled):
            return
        show_error(f"colourisation failed: {exc}")
        self._status.value = f"error: {exc}"

    def _on_finished(self) -> None:
        if self.worker is not None and self.worker.abort_requested:
            self._status.value = "cancelled"
        self.worker = None
        self._run.enabled, self._cancel.enabled = True, False

    # ----------------------------------------------------------------- layers
    def _on_result(self, res: dict, target, ref, settings: dict) -> None:
        if res is None:  # cancelled
            return
        self.last_result = res
        if res.get("lazy"):
            self._on_lazy_result(res, target, settings)
            return
        for w in res["warnings"]:
            show_warning(w)
        layers = self._viewer.layers
        if target not in layers:
            self._status.value = "the target layer was removed during the run: result discarded"
            return
        meta = {**settings, "kind": "result", "working_shape": list(res["working_shape"])}
        name = f"{target.name} [{res['model']}]"
        nd = res["rgb"].ndim - 1
        layer = add_or_update_image(self._viewer, res["rgb"], name, meta, keep=bool(self._keep.value), rgb=True,
                                    scale=tuple(target.scale[-nd:]), translate=tuple(target.translate[-nd:]))
        if self._scales.value and res["scales"] and nd == 2:
            for k, s in enumerate(res["scales"], 1):
                sc, tr = overlay_transform(target, res["rgb"].shape[:2], s.shape[:2])
                add_or_update_image(self._viewer, s, f"{name} P{k}", {**meta, "kind": f"P{k}"}, rgb=True,
                                    scale=sc, translate=tr, visible=False)
        if self._attention.value and res["attention"] and ref in layers and nd == 2:
            self._add_attention_layers(res, target, ref, name, meta)
        self._status.value = f"done: {layer.name}"
        show_info(f"napari-colorize: '{layer.name}' ready")

    def _on_lazy_result(self, res, target, settings) -> None:
        if target not in self._viewer.layers:
            self._status.value = "the target layer was removed during the run: result discarded"
            return
        nd = res["rgb"].ndim - 1
        name = f"{target.name} [{res['model']}]"
        layer = add_or_update_image(self._viewer, res["rgb"], name, {**settings, "kind": "lazy result"},
                                    keep=bool(self._keep.value), rgb=True, scale=tuple(target.scale[-nd:]),
                                    translate=tuple(target.translate[-nd:]))
        self.lazy_layer = layer
        self._save_path.visible = self._save.visible = True
        self._status.value = f"lazy: {layer.name} colourises each slice on view"

    def save_all(self) -> None:
        """Compute every slice of the lazy result and save it as an RGB TIFF (in a worker, with progress)."""
        layer = getattr(self, "lazy_layer", None)
        path = str(self._save_path.value)
        if layer is None or layer not in self._viewer.layers:
            show_error("there is no lazy result to save")
            return
        if path in ("", "."):
            show_error("choose a file to save to")
            return
        worker = save_job(layer.data, path)
        worker.yielded.connect(self._on_yield)
        worker.returned.connect(lambda r: r and show_info(f"saved {r['shape']} to {r['path']}"))
        worker.errored.connect(lambda e: show_error(f"saving failed: {e}"))
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._run.enabled, self._cancel.enabled = False, True
        worker.start()

    def _add_attention_layers(self, res, target, ref, name, meta) -> None:
        maps = res["attention"]
        for key, m in maps.items():
            conc = m.concentration()
            sc, tr = overlay_transform(target, spatial_shape(target), conc.shape)
            add_or_update_image(self._viewer, conc, f"{name} concentration {key}", {**meta, "kind": "concentration"},
                                scale=sc, translate=tr, colormap="magma", opacity=0.6, visible=False,
                                contrast_limits=(0, 1))
        self._attention_maps = maps
        self._attention_target, self._attention_ref, self._attention_name = target, ref, name
        self._query = query_points(self._viewer, target, f"{name} attention query", "cyan",
                                   {**meta, "kind": "query"}, self.update_attention_map)
        self.update_attention_map()

    def update_attention_map(self) -> None:
        """Heatmaps over the reference of where the query point attends: one layer per attention module
        (the effective 2-D map); the finest level's last module is shown, the others are hidden in the layer list."""
        q, target, ref = self._query, self._attention_target, self._attention_ref
        if q is None or len(q.data) == 0 or ref not in self._viewer.layers or target not in self._viewer.layers:
            return
        keys = sorted(self._attention_maps)
        shown = min(keys, key=lambda k: (self._attention_maps[k].stride, [-ord(c) for c in k]))
        for key in keys:
            m = self._attention_maps[key]
            i, j = query_cell(target, q, m.shape)
            eff = m.effective(i, j)
            sc, tr = overlay_transform(ref, ref.data.shape[:2], eff.shape)
            # visible applies when the layer is created; later updates keep the user's choice
            add_or_update_image(self._viewer, eff, f"{self._attention_name} attention {key}",
                                {"kind": "attention", "query": [i, j], "level": key}, scale=sc, translate=tr,
                                colormap="inferno", opacity=0.7, blending="additive", visible=key == shown,
                                contrast_limits=(0, float(eff.max()) or 1.0))
