"""napari-colorize: exemplar- and histogram-guided colourisation of greyscale images.

The public API (kept stable)::

    import napari_colorize as nc
    nc.list_models()
    model = nc.load_model("welsh", device="auto")
    res = nc.colorize(model, target, reference=ref_rgb)   # or histogram=hist
    res.rgb, res.scales, res.attention

This package never imports Qt; the napari widgets live in ``napari_colorize._widgets``.
"""

from .color import histogram_from_rgb, histogram_intersection
from .inference import Cancelled, ColorizeResult, ColorizeWarning, colorize, iter_colorize, lazy_colorize
from .models.registry import CheckpointError, list_models, load_model, resolve_device, save_checkpoint

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
    "CheckpointError",
    "resolve_device",
    "save_checkpoint",
    "histogram_from_rgb",
    "histogram_intersection",
    "__version__",
]
