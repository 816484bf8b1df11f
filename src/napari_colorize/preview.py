"""The interactive preview of colour points: the guide's colours computed once, the hints re-spread on each edit.

``p = HintPreview(model, grey, reference=ref)`` runs the model once at the working size (for the
``levin`` model: no reference, a grey start) and factors the hints' system once
(:class:`~napari_colorize.hints.HintSolver`); ``p.render(hints)`` then gives the working-size RGB with
the hints in a few milliseconds: moving a point costs one solve with the factors, recolouring one
costs less (docs/BENCHMARKS.md, ``benchmarks/bench_hints.py``). The full-size result is
:func:`~napari_colorize.colorize` with the same ``hints=``. 2-D targets (of a stack: the slice given).
"""

from __future__ import annotations

import numpy as np
import torch

from .color import AB_SCALE, lab_to_rgb_in_gamut
from .hints import check_hints, hint_ab, hints_to_working
from .plan import Plan, resolve_model

__all__ = ["HintPreview"]


class HintPreview:
    """Working-size previews of one 2-D target with changing colour points (see the module docs).

    Attributes: ``shape`` the target's (H, W), ``wshape`` the working (h, w), ``base`` the model's
    RGB without hints ``(h, w, 3)``."""

    def __init__(self, model, target, reference=None, histogram=None, *, size: int | None = None,
                 rgb: bool | None = None, hint_spread: float | None = None, normalize: str = "auto") -> None:
        model = resolve_model(model)
        # (a hints-only model is planned with a placeholder point: the real ones come with each render)
        self.plan = Plan.for_target(model, target, reference, histogram, size, normalize, rgb=rgb,
                                    hints=[(0, 0, (0.5, 0.5, 0.5))] if model.kind == "hints" else None,
                                    hint_spread=hint_spread)
        if self.plan.target.n_slices != 1:
            raise ValueError(f"the preview is of one 2-D image; give one slice (the target has "
                             f"{self.plan.target.n_slices})")
        self.plan.hints = []  # (the model's own colours: the hints come with each render)
        pred, L_work, _ = self.plan.predict(0)
        self.L = L_work.float().cpu()
        self.ab = pred.ab[0].detach().float().cpu()
        self.shape, self.wshape = tuple(self.plan.target.spatial), tuple(self.plan.wshape)
        self.solver = self.plan.hint_solver(0, self.L)
        self.base = self._rgb(self.ab)

    def _rgb(self, ab: torch.Tensor) -> np.ndarray:
        lab = torch.cat([self.L[None], ab.clamp(-1, 1) * AB_SCALE], 0)
        return lab_to_rgb_in_gamut(lab).permute(1, 2, 0).numpy()

    def render(self, hints) -> np.ndarray:
        """The working-size RGB ``(h, w, 3)`` float32 with ``hints`` (``[(y, x, (r, g, b)), ...]`` in target
        pixels, as :func:`~napari_colorize.colorize` takes them) set and spread."""
        hints = check_hints(hints, self.shape)
        if not hints:
            return self.base
        ab = self.solver.apply(self.ab, hints_to_working(hints, self.shape, self.wshape), hint_ab(hints))
        return self._rgb(ab)
