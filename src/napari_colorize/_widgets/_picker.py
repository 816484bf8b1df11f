"""The model controls shared by the colourising widgets: model, checkpoint file, device and working size.

The models offered and the one chosen first come from the registry
(:func:`napari_colorize.models.registry.list_models`, :func:`~napari_colorize.models.registry.default_model`);
a checkpoint file can be chosen instead. The widget places the controls where it wants them.
"""

from __future__ import annotations

from magicgui.widgets import ComboBox, FileEdit, SpinBox

from ..models import registry
from ..models.registry import list_models

__all__ = ["CHECKPOINT", "DEVICES", "WORKING_SIZE", "ModelPicker", "default_model", "model_names"]

CHECKPOINT = "checkpoint file..."  # the entry of the model list that shows the checkpoint file control
DEVICES = ["auto", "cpu", "cuda", "mps"]
#: the working size a run starts at: the long side the networks are trained and run at (their
#: ``default_size``). The classic baselines' own default differs (256): the widgets run every model at the
#: size in their control, so one starting value keeps a model's output the same whichever widget runs it.
WORKING_SIZE = 224


def default_model(kind: str) -> str | None:
    """The registry's default model of ``kind`` ("exemplar" or "histogram"), None when none is installed."""
    try:
        return registry.default_model(kind)
    except ValueError:
        return None


def model_names(*kinds: str) -> list[str]:
    """The installed models of ``kinds``, kind by kind in the registry's order."""
    return [name for kind in kinds for name in list_models(kind=kind)]


class ModelPicker:
    """A model list (the installed models of ``kinds``, then :data:`CHECKPOINT`; the registry's default of
    the first kind chosen), the checkpoint file (shown when :data:`CHECKPOINT` is chosen), the device and
    the working size, as magicgui controls: ``model``, ``checkpoint``, ``device``, ``size``."""

    def __init__(self, kinds: tuple[str, ...]) -> None:
        self.kinds = tuple(kinds)
        self.model = ComboBox(label="model", choices=self.choices)
        self.checkpoint = FileEdit(label="checkpoint", filter="*.safetensors", visible=False)
        self.device = ComboBox(label="device", choices=DEVICES, value="auto")
        self.size = SpinBox(label="working size", value=WORKING_SIZE, min=32, max=4096, step=32)
        best = default_model(self.kinds[0])
        if best in self.model.choices:
            self.model.value = best
        self.model.changed.connect(lambda value: setattr(self.checkpoint, "visible", value == CHECKPOINT))

    def choices(self, _=None) -> list[str]:
        return model_names(*self.kinds) + [CHECKPOINT]

    def name(self) -> str | None:
        """The chosen registry name, or the checkpoint file's path; None when the checkpoint entry is chosen
        but no file is."""
        if self.model.value != CHECKPOINT:
            return self.model.value
        path = str(self.checkpoint.value)
        return None if path in ("", ".") else path

    def set(self, name: str) -> None:
        """Choose a model by name (one of the list) or a checkpoint file."""
        if name in self.model.choices:
            self.model.value = name
        else:
            self.model.value = CHECKPOINT
            self.checkpoint.value = name
