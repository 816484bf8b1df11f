"""Run state of the widgets kept out of Qt: what the exemplar widget's attention view shows.

Plain data, no Qt and no napari: the widget keeps one of these, fills it from a run and reads it to
draw (micro-sam's ``_state.py`` keeps the annotators' run state the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AttentionView"]


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
