"""State of the widgets kept out of Qt: what the exemplar widget's attention view shows, which file a save may replace.

Plain data, no Qt and no napari: the widget keeps one of these, fills it from a run and reads it to
draw (micro-sam's ``_state.py`` keeps the annotators' run state the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import os
from pathlib import Path

__all__ = ["AttentionView", "SaveGuard"]


@dataclass
class AttentionView:
    """The attention of the last exemplar run with attention, and what it is drawn over."""

    maps: dict = field(default_factory=dict)  # module name -> AttentionMaps (napari_colorize.models.maps)
    target: object = None  # the target layer the maps belong to
    refs: list = field(default_factory=list)  # the reference layers, in the order the maps lay them side by side
    meta: dict = field(default_factory=dict)  # our metadata of the run's attention layers
    drawn: set = field(default_factory=set)  # modules whose concentration layer this run has drawn
    query: object = None  # the query Points layer ("attention point")

    def shown_key(self) -> str | None:
        """The module shown by default: the finest level's last module (None: no maps)."""
        maps = self.maps
        return min(maps, key=lambda k: (maps[k].stride, [-ord(c) for c in k])) if maps else None

    def keys(self, all_levels: bool) -> list[str]:
        """The modules whose layers are shown: the default one, or all of them with ``all_levels``."""
        return sorted(self.maps) if all_levels else [self.shown_key()]

    def clear(self) -> None:
        """No attention on view (the target and references are kept: their query layer may still be ours)."""
        self.maps, self.query = {}, None


def _key(path) -> str:
    return os.path.normcase(os.path.realpath(os.path.expanduser(str(path))))


@dataclass
class SaveGuard:
    """Whether a widget may write to a file a user typed or picked: a new file at once; an existing file only
    when asked for twice in a row (the first press says it exists and what a second press does); never a file
    a layer of the viewer was read from (``sources``), which would replace the user's input."""

    pending: str | None = None  # the existing file a first press was warned about

    def check(self, path, layers=()) -> str | None:
        """None: go ahead; otherwise what to tell the user (nothing is written). ``layers``: the viewer's
        (their source files are never replaced); after a refusal, :attr:`pending` is set when pressing again
        will go ahead."""
        key = _key(path)
        sources = [getattr(getattr(layer, "source", None), "path", None) for layer in layers]
        if any(key == _key(s) for s in sources if s):
            self.pending = None
            return f"{path} is the file a layer was read from: saving there would replace it; choose another name"
        p = Path(os.path.expanduser(str(path)))
        if p.is_dir():
            self.pending = None
            return f"{path} is a folder: choose a file name"
        if os.path.lexists(p) and self.pending != key:
            self.pending = key
            return f"{path} exists: press again to replace it (it is replaced only once the new file is complete)"
        self.pending = None
        return None
