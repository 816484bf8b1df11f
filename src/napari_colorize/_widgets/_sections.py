"""Small Qt building blocks shared by the widgets: a collapsible section and file dialogs."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFileDialog, QSizePolicy, QToolButton, QVBoxLayout, QWidget


class Collapsible(QWidget):
    """A titled section that folds away (closed by default) to keep a docked widget short."""

    def __init__(self, title: str, content, expanded: bool = False, parent=None) -> None:
        super().__init__(parent)
        self.content = getattr(content, "native", content)  # a magicgui widget or a QWidget
        self.button = QToolButton(text=title, checkable=True)
        self.button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.button.setStyleSheet("QToolButton { border: none; text-align: left; font-weight: bold; }")
        self.button.toggled.connect(self.set_expanded)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.button)
        lay.addWidget(self.content)
        self.set_expanded(expanded)

    @property
    def expanded(self) -> bool:
        return self.button.isChecked()

    def set_expanded(self, on: bool) -> None:
        if self.button.isChecked() != bool(on):
            self.button.setChecked(bool(on))  # calls back here through toggled
            return
        self.button.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self.content.setVisible(bool(on))


def ask_path(mode: str, caption: str, filter: str = "", parent=None) -> str | None:
    """A file dialog: ``mode`` "r" opens an existing file, "w" chooses a file to save to. None when cancelled."""
    if mode not in ("r", "w"):
        raise ValueError("mode must be 'r' (open) or 'w' (save)")
    ask = QFileDialog.getOpenFileName if mode == "r" else QFileDialog.getSaveFileName
    path, _ = ask(parent, caption, "", filter)
    return path or None
