"""The widgets' job runner: one background job at a time, its buttons, progress, status, failure and end.

A widget hands each napari thread worker (one of :mod:`._workers`' jobs) to its :class:`JobRunner`,
which connects it the same way for every widget: the widget's buttons are disabled (and Cancel enabled)
while it runs, its :class:`~._workers.Progress` messages drive the progress bar and the status line, a
failure is reported (a cancelled run is not one), and at the end, however it ends, the worker is dropped
and the buttons given back. ``runner.worker`` is None when no job runs. Qt is reached only through the
magicgui controls the runner is given.
"""

from __future__ import annotations

from typing import Callable

from napari.utils.notifications import show_error, show_warning

from ..inference import Cancelled
from ._workers import Progress

__all__ = ["JobRunner", "RunsJobs"]


class JobRunner:
    """Runs a widget's jobs. ``buttons``: disabled while a job runs; ``cancel``: the Cancel button (enabled
    while one runs); ``progress`` (a progress bar) and ``status`` (a label) follow the job's messages. Any of
    them may be None."""

    def __init__(self, buttons=(), cancel=None, progress=None, status=None) -> None:
        self.buttons = list(buttons)
        self.cancel_button = cancel
        self.progress = progress
        self.status = status
        self.worker = None  # the running job's worker
        self._then: Callable[[], None] | None = None  # the widget's own end of the running job

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def start(self, worker, failed: str | Callable, *, text: str | None = None, error_status: bool = False,
              yielded: Callable | None = None, returned: Callable | None = None,
              finished: Callable[[], None] | None = None):
        """Start ``worker`` with the widget busy. ``text``: the status line meanwhile; ``failed``: what is
        said on failure (``"colourisation failed"`` shows "colourisation failed: <error>"; with
        ``error_status`` also "error: <error>" in the status line) or a handler of the exception;
        ``yielded`` is called after the progress is shown, ``returned`` with the result, ``finished``
        after the runner has given the buttons back."""
        if text is not None:
            _show(self.status, "value", text)
        _show(self.progress, "value", 0)
        self._set_busy(True)
        if hasattr(worker, "yielded"):  # (a generator's worker; a plain function's yields nothing)
            worker.yielded.connect(self.show_progress)
        if yielded is not None:
            worker.yielded.connect(yielded)
        if returned is not None:
            worker.returned.connect(returned)
        worker.errored.connect(failed if callable(failed) else lambda exc: self._report(exc, failed, error_status))
        worker.finished.connect(self._on_finished)
        self.worker, self._then = worker, finished
        worker.start()
        return worker

    def cancel(self) -> None:
        """Ask the running job to stop (at its next message)."""
        if self.worker is not None:
            self.worker.quit()
            _show(self.status, "value", "cancelling...")

    def show_progress(self, msg) -> None:
        """A :class:`~._workers.Progress` message on the progress bar and in the status line."""
        if not isinstance(msg, Progress):
            return
        _show(self.progress, "max", max(1, msg.total))
        _show(self.progress, "value", msg.done)
        _show(self.status, "value", msg.text)

    def _report(self, exc, what: str, error_status: bool) -> None:
        if isinstance(exc, Cancelled) or isinstance(exc.__cause__, Cancelled):  # (a job's Cancelled: a JobError's cause)
            return
        show_error(f"{what}: {exc}")
        if error_status:
            _show(self.status, "value", f"error: {exc}")

    def _set_busy(self, busy: bool) -> None:
        for button in self.buttons:
            _show(button, "enabled", not busy)
        _show(self.cancel_button, "enabled", busy)

    def _on_finished(self) -> None:
        if self.worker is not None and self.worker.abort_requested:
            _show(self.status, "value", "cancelled")
        then, self.worker, self._then = self._then, None, None
        self._set_busy(False)
        if then is not None:
            then()


def refuse(text: str, status, warning: bool = False) -> None:
    """Say why nothing was started: a notification (an error, or a ``warning`` when pressing again will
    do) and the same line in the ``status`` label."""
    (show_warning if warning else show_error)(text)
    _show(status, "value", text)


def _show(control, attr: str, value) -> None:
    """Set a control's ``attr``, unless there is no control or its widget was closed while the job ran
    (Qt has deleted it: the job's end has nothing left to show)."""
    if control is None:
        return
    try:
        setattr(control, attr, value)
    except RuntimeError:
        pass


class RunsJobs:
    """For a widget with a :class:`JobRunner` as ``jobs``: its ``worker`` (None when idle) and ``cancel()``."""

    jobs: JobRunner

    @property
    def worker(self):
        """The running job's worker, None when no job runs."""
        return self.jobs.worker

    def cancel(self) -> None:
        self.jobs.cancel()
