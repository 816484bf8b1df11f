"""napari widgets: the only part of napari-colorize that imports Qt (through napari and magicgui)."""

from ._compare import CompareWidget
from ._exemplar import ExemplarWidget
from ._histogram import HistogramWidget

__all__ = ["CompareWidget", "ExemplarWidget", "HistogramWidget"]
