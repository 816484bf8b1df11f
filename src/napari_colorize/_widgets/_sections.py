"""Small Qt building blocks shared by the widgets: collapsible sections, scrolling bodies, file dialogs.

Also wrapping labels, and the widest a docked widget of ours grows."""

from __future__ import annotations

from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import QFileDialog, QFrame, QScrollArea, QSizePolicy, QToolButton, QVBoxLayout, QWidget

#: the widest (px) a docked widget of ours grows: long layer names and messages wrap instead of
#: pushing the canvas aside (the widgets need about 320 px)
DOCK_MAX_WIDTH = 460


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


def wrap_label(label, lines: int = 1) -> None:
    """A label (magicgui or Qt) whose long text wraps onto more lines instead of widening the dock; ``lines``:
    the height it keeps (a label inside a folding section is not given more when its text grows)."""
    q = getattr(label, "native", label)
    q.setWordWrap(True)
    q.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # its text asks for no width
    q.setMinimumWidth(0)
    if lines > 1:
        q.setMinimumHeight(lines * q.fontMetrics().lineSpacing() + 2 * q.margin() + 4)


class _DockScroll(QScrollArea):
    """A vertical scroll area that asks for its content's full size (so it opens unscrolled where there is
    room) but can shrink to a few rows (so docked widgets share a short window instead of growing it)."""

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt)
        inner = self.widget().sizeHint() if self.widget() is not None else QSize(0, 0)
        bar = self.verticalScrollBar().sizeHint().width()
        return QSize(min(inner.width() + bar, DOCK_MAX_WIDTH), inner.height() + 2 * self.frameWidth())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt)
        inner = self.widget().minimumSizeHint() if self.widget() is not None else QSize(0, 0)
        bar = self.verticalScrollBar().sizeHint().width()
        return QSize(min(inner.width() + bar, DOCK_MAX_WIDTH), min(inner.height(), 160))


def cap_height(widget, height: int) -> None:
    """At most ``height`` pixels tall for a magicgui ``widget``, and its labelled row too (a row may
    otherwise take the room left over in the dock, leaving a gap around a short list)."""
    widget.native.setMaximumHeight(height)
    row = widget.native.parentWidget()
    if row is not None:
        row.setMaximumHeight(height + 8)


def make_scrollable(container, max_width: int = DOCK_MAX_WIDTH) -> QScrollArea:
    """Move everything in a magicgui ``container``'s layout into a vertical scroll area that fills it,
    and cap its width at ``max_width``. Call it last in the widget's ``__init__``: widgets added to the
    container afterwards go below the scroll area."""
    outer = container.native
    lay = outer.layout()
    body = QWidget()
    body.setObjectName("scroll body")
    inner = QVBoxLayout(body)
    m = lay.contentsMargins()
    inner.setContentsMargins(m.left(), m.top(), m.right(), m.bottom())
    inner.setSpacing(lay.spacing())
    stretches = [lay.stretch(i) for i in range(lay.count())]  # (the compare table keeps the room left)
    for stretch in stretches:
        item = lay.takeAt(0)
        if item.widget() is not None:
            inner.addWidget(item.widget(), stretch)
        else:
            inner.addItem(item)
    scroll = _DockScroll()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(body)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(scroll)
    outer.setMaximumWidth(max_width)
    return scroll
