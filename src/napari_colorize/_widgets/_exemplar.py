"""The exemplar colourisation widget: target + reference layers -> an RGB result layer.

All maths is in the library (:func:`napari_colorize.iter_colorize`); this module only moves data
between layers and a worker thread.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, Container, FileEdit, Label, ProgressBar, PushButton, Select
from napari.utils.notifications import show_error, show_info, show_warning

from ..models.registry import list_models
from ..provenance import named
from ._layers import (PROVENANCE, DefaultPicks, add_or_update_image, bring_to_front, colour_layers, find_ours,
                      layer_picker, overlay_transform, query_cell, query_points, remove_ours, score_colour, score_grey, spatial_shape)
from ._jobs import JobRunner, RunsJobs, refuse
from ._picker import ModelPicker
from ._sections import Collapsible, cap_height, make_scrollable, wrap_label
from ._state import AttentionView, SaveGuard
from ._workers import MODELS, Colourised, LazyResult, colorize_job, lazy_job, save_job



def is_lazy(data) -> bool:
    """Dask, zarr and other array-likes that are not in memory."""
    return not isinstance(data, np.ndarray) and hasattr(data, "shape") and hasattr(data, "dtype")


def short_key(key: str) -> str:
    """``"level4.module2"`` -> ``"L4.2"`` (attention module names that fit in the layer list)."""
    parts = ["".join(c for c in p if c.isdigit()) for p in key.split(".")]
    return "L" + ".".join(parts) if all(parts) else key


def layer_provenance(made: dict, settings: dict) -> dict:
    """A run's provenance with its guides and target named by their layers."""
    if not made:
        return {}
    names = settings.get("keyframes") or settings.get("references") or [settings.get("reference")]
    out = named(made, names, target=f"layer '{settings.get('target')}'", files=False)
    if settings.get("colour points"):
        out["hints_from"] = f"layer '{settings['colour points']}'"
    return out


class ExemplarWidget(RunsJobs, Container):
    """Colourise a greyscale layer guided by a colour reference layer (and, optionally, more of them:
    each pixel may then take colour from any of them)."""

    def __init__(self, napari_viewer) -> None:
        self._viewer = napari_viewer
        self._target = layer_picker(napari_viewer, "grey target")
        self._reference = layer_picker(napari_viewer, "colour reference")
        self._more = Select(label="more references", choices=lambda _w: colour_layers(
            napari_viewer, exclude=(self._target.value, self._reference.value)), value=[])
        self._more.tooltip = ("more colour references (ctrl-click to choose several): every pixel may take colour "
                              "from any of the references")
        self.picker = ModelPicker(("exemplar", "hints"))
        p = self.picker
        self._model, self._checkpoint, self._device, self._size = p.model, p.checkpoint, p.device, p.size
        self._scales = CheckBox(text="add multi-scale outputs P1-P4")
        self._confidence = CheckBox(text="add match confidence (where the reference matched)")
        self._attention = CheckBox(text="add attention (where a point looks)")
        self._all_levels = CheckBox(text="all attention levels", visible=False)
        self._keep = CheckBox(text="keep each run as a new layer")
        self._run = PushButton(text="Run")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(value=0, min=0, max=1, label="progress")
        self._status = Label(value="")
        self._save_path = FileEdit(label="save lazy result", filter="*.tif", mode="w", visible=False)
        self._save = PushButton(text="Compute and save all", visible=False)
        super().__init__(widgets=[self._target, self._reference, self._more, self._model, self._checkpoint,
                                  self._attention,
                                  self._all_levels,
                                  Container(widgets=[self._run, self._cancel], layout="horizontal", labels=False),
                                  self._progress, self._status, self._save_path, self._save])
        # less used settings fold away, so that two docked widgets fit a laptop screen
        self.sections = {"options": Collapsible("Options (device, size, P1-P4, confidence, keep runs)", Container(
            widgets=[self._device, self._size, self._scales, self._confidence, self._keep]))}
        self.native.layout().addWidget(self.sections["options"])
        from ._suggest import SuggestPanel

        self.suggest = SuggestPanel(napari_viewer, self._target, self._reference)
        self.sections["suggest"] = Collapsible("Suggest a reference", self.suggest)
        self.native.layout().addWidget(self.sections["suggest"])
        from ._keyframes import KeyframePanel

        self.keyframes = KeyframePanel(napari_viewer, self._target, self.references)
        self.sections["keyframes"] = Collapsible("Keyframes (stacks: a reference per slice)", self.keyframes)
        self.native.layout().addWidget(self.sections["keyframes"])
        from ._hints import HintPanel

        self.hints = HintPanel(napari_viewer, self._target, self.references, self.model_name,
                               lambda: self._size.value)
        self.sections["hints"] = Collapsible("Colour points (fix a colour by hand)", self.hints)
        self.native.layout().addWidget(self.sections["hints"])
        self.native.layout().addStretch(1)  # (room left over goes below the sections, not between the rows)
        self._save.clicked.connect(self.save_all)
        for picker in (self._target, self._reference):  # (the more-references list leaves those out)
            picker.changed.connect(lambda _: self._more.reset_choices())
        self._attention.changed.connect(lambda v: setattr(self._all_levels, "visible", bool(v)))
        self._all_levels.changed.connect(lambda _: self._show_levels())
        self._run.clicked.connect(self.run)
        self._cancel.clicked.connect(self.cancel)
        self.jobs = JobRunner([self._run], self._cancel, self._progress, self._status)
        self.last_result: Colourised | LazyResult | None = None
        self.lazy_layer = None  # the last lazy result's layer (Compute and save all)
        self.attention_view = AttentionView()
        self._save_guard = SaveGuard()  # (an existing file is replaced only when asked for twice)
        self._model_override: str | None = None  # a loaded model registered in the cache (tests, scripts)
        self._picks = DefaultPicks()
        self._picks.add(self._target, score_grey)
        self._picks.add(self._reference, lambda l: score_colour(l, self._target.value))
        self._picks.pick()
        wrap_label(self._status)  # a long message wraps, the dock keeps its width
        cap_height(self._more, 72)  # (its row: after the container holds it)
        make_scrollable(self)  # docked with others, the widget scrolls rather than grow the window

    def reset_choices(self, *_) -> None:
        """napari calls this when layers change: refresh the pickers, keep them on sensible layers."""
        picks = getattr(self, "_picks", None)
        if picks is None:  # during construction
            super().reset_choices()
        else:
            picks.reset(super().reset_choices)

    # ------------------------------------------------------------------ model
    def hints_only(self) -> bool:
        """The model colours from colour points alone (levin): no reference is used."""
        return self._model.value in list_models(kind="hints") and not self._model_override

    def set_model(self, name: str) -> None:
        """Choose a model by name (one of the list) or a checkpoint file."""
        self.picker.set(name)

    def model_name(self) -> str:
        return self._model_override or self.picker.name() or str(self._checkpoint.value)

    # -------------------------------------------------------------------- run
    def references(self) -> list:
        """The reference layers of a run: the colour reference, then the chosen *more references*."""
        ref = self._reference.value
        extra = [l for l in (self._more.value or []) if l is not ref and l in self._viewer.layers]
        return ([ref] if ref is not None else []) + extra

    def _check_inputs(self):
        target, ref = self._target.value, self._reference.value
        if self.hints_only():
            if target is None:
                raise ValueError("choose a greyscale target layer")
            if not self.hints.hints(target):
                raise ValueError(f"{self._model.value} colours from colour points alone: add a colour points layer "
                                 "(Colour points) and click on the image")
            return target, []
        if target is None or ref is None:
            raise ValueError("choose a greyscale target layer and a colour reference layer")
        refs = self.references()
        if any(target is r for r in refs):
            raise ValueError("the target and the reference are the same layer")
        for r in refs:
            if not r.rgb:
                raise ValueError(f"the reference layer '{r.name}' has no colour: choose an RGB layer")
            if r.ndim > 2:
                raise ValueError(f"the reference layer '{r.name}' is a stack of {r.ndim}-D colour images: choose a "
                                 "2-D colour image (a slice of it as its own layer, or Keyframes for a reference per "
                                 "slice)")
        if target.rgb:
            show_warning(f"'{target.name}' is an RGB layer: its lightness is used as the grey target")
        return target, refs

    def run(self) -> None:
        if self.jobs.busy:
            return
        try:
            target, refs = self._check_inputs()
        except ValueError as e:
            show_error(str(e))
            return
        settings = {"model": self.model_name(), "device": self._device.value, "size": int(self._size.value),
                    "reference": refs[0].name if refs else None, "target": target.name}
        if len(refs) > 1:
            settings["references"] = [r.name for r in refs]
        guide = None if not refs else np.asarray(refs[0].data) if len(refs) == 1 else [np.asarray(r.data) for r in refs]
        hints = self.hints.hints(target) or None
        if hints:
            settings["colour points"], settings["hint_spread"] = self.hints.points.name, self.hints.spread
        spread = None if self.hints_only() else self.hints.spread
        stack = target.data.ndim > (3 if target.rgb else 2)
        keyframes = self.keyframes.guide(self._viewer.layers) if stack and refs else None
        blend = self.keyframes.blend
        if keyframes:  # a reference per keyframe instead of one for every slice
            guide = None
            settings["keyframes"], settings["blend"] = self.keyframes.names(), blend
        lazy = is_lazy(target.data) and stack
        if lazy:  # a dask/zarr stack stays lazy: slices are colourised when viewed
            worker = lazy_job(settings["model"], settings["device"], target.data, guide,
                              settings["size"], bool(target.rgb), references=keyframes, blend=blend, hints=hints,
                              hint_spread=spread)
        else:
            worker = colorize_job(settings["model"], settings["device"], np.asarray(target.data),
                                  reference=guide, size=settings["size"],
                                  attention=bool(self._attention.value) and bool(refs), rgb=bool(target.rgb),
                                  references=keyframes, blend=blend, hints=hints, hint_spread=spread)
        self.jobs.start(worker, "colourisation failed", error_status=True, text="running...",
                        returned=lambda res: self._on_result(res, target, refs, settings))

    # ----------------------------------------------------------------- layers
    def _on_result(self, res, target, refs, settings: dict) -> None:
        if res is None:  # cancelled
            return
        self.last_result = res
        if isinstance(res, LazyResult):
            self._on_lazy_result(res, target, settings)
            return
        for w in res.warnings:
            show_warning(w)
        layers = self._viewer.layers
        if target not in layers:
            self._status.value = "the target layer was removed during the run: result discarded"
            return
        meta = {**settings, "kind": "result", "working_shape": list(res.working_shape)}
        name = f"{target.name} [{res.model}]"
        nd = res.rgb.ndim - 1
        layer = add_or_update_image(self._viewer, res.rgb, name, meta, keep=bool(self._keep.value), rgb=True,
                                    scale=tuple(target.scale[-nd:]), translate=tuple(target.translate[-nd:]),
                                    provenance=layer_provenance(res.provenance, settings))
        missing, made = [], set()
        if self._scales.value:
            if res.scales and not res.is_stack:
                for k, s in enumerate(res.scales, 1):
                    sc, tr = overlay_transform(target, res.rgb.shape[:2], s.shape[:2])
                    add_or_update_image(self._viewer, s, f"{name} P{k}", {**meta, "kind": f"P{k}"}, rgb=True,
                                        scale=sc, translate=tr, visible=False, interpolation2d="linear")
                    made.add(f"{name} P{k}")
            else:
                missing.append("P1-P4")
        if self._confidence.value:
            if res.confidence is not None:
                add_or_update_image(self._viewer, res.confidence, f"{name} confidence", {**meta, "kind": "confidence"},
                                    keep=bool(self._keep.value), colormap="magma", contrast_limits=(0.0, 1.0),
                                    scale=tuple(target.scale[-nd:]), translate=tuple(target.translate[-nd:]),
                                    opacity=0.7, blending="translucent")
                made.add(f"{name} confidence")
            else:
                missing.append("the match confidence")
        self._drop_stale_extras(name, made)
        added = False
        if self._attention.value:
            if res.attention and not res.is_stack and all(r in layers for r in refs):
                self._add_attention_layers(res, target, refs, meta)
                added = True
            else:
                missing.append("attention")
        # (a run without attention of its own: the earlier run's maps go, they would follow the point for it)
        self._drop_stale_attention(target if added else None)
        if settings.get("colour points") and self.hints.points is not None:
            bring_to_front(self._viewer, self.hints.points)  # (the points stay visible over the result, to be moved)
        self._status.value = f"done: {layer.name}"
        if missing:
            why = "a stack (they are made for 2-D images)" if res.is_stack and "the match confidence" not in missing \
                else f"'{res.model}' (only the exemplar networks and the warps have them)"
            if "attention" in missing and not res.is_stack and res.attention and any(r not in layers for r in refs):
                why = "a reference layer was removed"
            msg = f"{' and '.join(missing)} not available for {why}"
            show_info(msg)
            self._status.value = f"done: {layer.name}; {msg}"
        show_info(f"napari-colorize: '{layer.name}' ready")

    def _on_lazy_result(self, res: LazyResult, target, settings: dict) -> None:
        if target not in self._viewer.layers:
            self._status.value = "the target layer was removed during the run: result discarded"
            return
        nd = res.rgb.ndim - 1
        name = f"{target.name} [{res.model}]"
        layer = add_or_update_image(self._viewer, res.rgb, name, {**settings, "kind": "lazy result"},
                                    keep=bool(self._keep.value), rgb=True, scale=tuple(target.scale[-nd:]),
                                    translate=tuple(target.translate[-nd:]),
                                    provenance=layer_provenance(res.provenance, settings))
        self.lazy_layer = layer
        self._save_path.visible = self._save.visible = True
        self._status.value = f"lazy: {layer.name} colourises each slice on view"

    def save_all(self) -> None:
        """Compute every slice of the lazy result and save it as an RGB TIFF (in a worker, with progress)."""
        layer = self.lazy_layer
        path = str(self._save_path.value)
        if layer is None or layer not in self._viewer.layers:
            show_error("there is no lazy result to save")
            return
        if path in ("", "."):
            show_error("choose a file to save to")
            return
        from ..io import ImageWriteError, check_output_format

        try:
            check_output_format(path, stack=len(layer.data.shape) > 3, dtype="uint8")
        except ImageWriteError as e:
            show_error(str(e))
            return
        refused = self._save_guard.check(path, self._viewer.layers)
        if refused:
            return refuse(refused, self._status, warning=self._save_guard.pending is not None)
        self.jobs.start(save_job(layer.data, path, layer.metadata.get(PROVENANCE)), "saving failed",
                        returned=lambda r: r and show_info(f"saved {r.shape} to {r.path}"))

    # -------------------------------------------------------------- attention
    def shown_key(self) -> str | None:
        """The attention module shown by default: the finest level's last module."""
        return self.attention_view.shown_key()

    def _drop_stale_extras(self, name: str, made: set[str]) -> None:
        """Remove our P1-P4 and match-confidence layers of an earlier run into the result layer ``name`` that
        this run did not remake (its option off, or a model without them): beside the new result they
        would show the earlier run's. With ``keep`` on, the earlier result stays, and its layers with it."""
        if self._keep.value:
            return
        stale = ({f"{name} P{k}" for k in range(1, 5)} | {f"{name} confidence"}) - made
        remove_ours(self._viewer, lambda meta: meta.get("kind") in ("P1", "P2", "P3", "P4", "confidence")
                    and meta.get("slot") in stale)

    def _drop_stale_attention(self, target) -> None:
        """Remove our attention layers of earlier runs: all of them when this run has none, those of
        another target (or of levels this run has not) when it has; ours only, found by their metadata."""
        view = self.attention_view
        keys = set(view.maps) if target is not None else set()

        def stale(meta: dict) -> bool:
            if meta.get("widget") != "exemplar" or meta.get("kind") not in ("attention", "concentration", "query"):
                return False
            over = meta.get("over")  # (the map over a reference this run did not use)
            return target is None or meta.get("target") != target.name or \
                (meta.get("level") is not None and meta["level"] not in keys) or \
                (over is not None and over not in [r.name for r in view.refs])

        remove_ours(self._viewer, stale)
        if target is None:
            view.clear()

    def _add_attention_layers(self, res: Colourised, target, refs, meta) -> None:
        meta, view = {**meta, "widget": "exemplar"}, self.attention_view
        if view.target is not target:  # another target: its own point
            remove_ours(self._viewer, lambda m: m.get("widget") == "exemplar" and m.get("kind") == "query")
        view.maps, view.target, view.refs, view.meta, view.drawn = res.attention, target, list(refs), meta, set()
        view.query = query_points(self._viewer, target, "attention point", "cyan", {**meta, "kind": "query"},
                                  self.update_attention_map)
        self._show_levels()
        layers, q = self._viewer.layers, view.query
        if q in layers and layers.index(q) < len(layers) - 1:  # the point on top, where it can be dragged
            layers.move(layers.index(q), len(layers))

    def _names(self, key: str) -> tuple[str, str]:
        """Layer names (heatmap, concentration) of attention module ``key``: short enough for the layer list."""
        if key == self.shown_key():
            return "attention", "concentration"
        return f"att {short_key(key)}", f"conc {short_key(key)}"

    def _show_levels(self) -> None:
        """Concentration layers of the modules on view (once per run), then their heatmaps; with *all attention
        levels* unticked, our layers of the other modules are removed."""
        view = self.attention_view
        maps, target = view.maps, view.target
        if not maps or target not in self._viewer.layers:
            return
        keys = view.keys(self._all_levels.value)
        for key in sorted(maps):
            if key in keys:
                continue
            extra = [f"{self._names(key)[0]} {k + 1}" for k in range(1, len(view.refs))]
            for slot in [*self._names(key), *extra]:
                layer = find_ours(self._viewer, slot)
                if layer is not None:
                    self._viewer.layers.remove(layer)
            view.drawn.discard(key)
        for key in keys:
            if key in view.drawn:
                continue
            conc = maps[key].on_pixels(maps[key].concentration())  # (covers the target exactly)
            sc, tr = overlay_transform(target, spatial_shape(target), conc.shape)
            add_or_update_image(self._viewer, conc, self._names(key)[1],
                                {**view.meta, "kind": "concentration", "level": key},
                                scale=sc, translate=tr, colormap="magma", opacity=0.6, visible=False,
                                contrast_limits=(0, 1), interpolation2d="linear")
            view.drawn.add(key)
        self.update_attention_map()

    def update_attention_map(self) -> None:
        """Heatmaps over the reference of where the query point looks: the effective 2-D map of the finest level's
        last module ("attention"; with *all attention levels*, one "att L4.2" layer per module), drawn with linear
        interpolation over the reference. They follow the point."""
        view = self.attention_view
        q, maps, target, refs = view.query, view.maps, view.target, view.refs
        if q is None or not maps or len(q.data) == 0:
            return
        if target not in self._viewer.layers:
            return
        gone = {r.name for r in refs if r not in self._viewer.layers}
        if gone:  # a reference removed since the run: its maps go, the others keep following the point
            remove_ours(self._viewer, lambda meta: meta.get("widget") == "exemplar" and meta.get("kind") == "attention"
                        and meta.get("over") in gone)
            self._status.value = f"reference layer {', '.join(sorted(gone))} removed: its attention map is gone"
            if len(gone) == len(refs):
                return
        default = self.shown_key()
        for key in view.keys(self._all_levels.value):
            m = maps[key]
            i, j = query_cell(target, q, m.shape, m.cell_centre)
            eff = m.effective(i, j)  # (h, K w): over the references side by side (one softmax over all)
            w = eff.shape[1] // len(refs)
            top = float(eff.max()) or 1.0
            for k, ref in enumerate(refs):  # each reference's part of the map, over that reference
                if ref.name in gone:
                    continue
                part = m.on_pixels(eff[:, k * w:(k + 1) * w])  # (on the pixels: covers the reference exactly)
                sc, tr = overlay_transform(ref, ref.data.shape[:2], part.shape)
                meta = {**view.meta, "kind": "attention", "query": [i, j], "level": key,
                        "over": ref.name}
                name = self._names(key)[0] + ("" if k == 0 else f" {k + 1}")
                # visible applies when the layer is created; later updates keep the user's choice
                add_or_update_image(self._viewer, part, name, meta, scale=sc, translate=tr,
                                    colormap="inferno", opacity=0.7, blending="additive",
                                    contrast_limits=(0, top), interpolation2d="linear", visible=key == default)
