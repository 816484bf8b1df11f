"""napari-colorize: exemplar- and histogram-guided colourisation of greyscale images.

The public API (kept stable)::

    import napari_colorize as nc
    nc.list_models()
    model = nc.load_model("welsh", device="auto")
    res = nc.colorize(model, target, reference=ref_rgb)   # or histogram=hist
    res.rgb, res.scales, res.attention

This package never imports Qt; the napari widgets live in ``napari_colorize._widgets``.
"""

from importlib import import_module
from typing import TYPE_CHECKING

# The public names, imported on first use (PEP 562): listing models or the CLI's help does not
# import torch.
_LAZY = {
    "histogram_from_rgb": ".color", "histogram_intersection": ".color",
    "Cancelled": ".inference", "NonFiniteError": ".plan", "ColorizeResult": ".inference", "ColorizeWarning": ".inference",
    "colorize": ".inference", "iter_colorize": ".inference", "lazy_colorize": ".inference",
    "CheckpointError": ".models.registry", "list_models": ".models.registry", "load_model": ".models.registry",
    "resolve_device": ".models.registry", "save_checkpoint": ".models.registry",
    "set_threads": ".threads", "keep_freed_memory": ".allocator",
}

if TYPE_CHECKING:  # pragma: no cover
    from .color import histogram_from_rgb, histogram_intersection  # noqa: F401
    from .inference import (Cancelled, ColorizeResult, ColorizeWarning, colorize, iter_colorize,  # noqa: F401
                            lazy_colorize)
    from .plan import NonFiniteError  # noqa: F401
    from .models.registry import (CheckpointError, list_models, load_model, resolve_device,  # noqa: F401
                                  save_checkpoint)
    from .allocator import keep_freed_memory  # noqa: F401
    from .threads import set_threads  # noqa: F401


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    if not name.startswith("__"):  # submodules (nc.metrics, nc.color, ...) as attributes, imported on use
        try:
            return import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module 'napari_colorize' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "list_models",
    "load_model",
    "colorize",
    "iter_colorize",
    "lazy_colorize",
    "ColorizeResult",
    "ColorizeWarning",
    "Cancelled",
    "NonFiniteError",
    "CheckpointError",
    "resolve_device",
    "save_checkpoint",
    "histogram_from_rgb",
    "histogram_intersection",
    "set_threads",
    "keep_freed_memory",
    "__version__",
]
