"""The C allocator's settings (allocator.py): set once on glibc, never with NAPARI_COLORIZE_MALLOC=0."""

import sys

import pytest

from napari_colorize.allocator import ENV, keep_freed_memory


def test_off_when_the_user_says_so(monkeypatch):
    monkeypatch.setenv(ENV, "0")
    assert keep_freed_memory() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_set_once_on_glibc(monkeypatch):
    import ctypes

    monkeypatch.delenv(ENV, raising=False)
    glibc = hasattr(ctypes.CDLL(None), "gnu_get_libc_version")
    assert keep_freed_memory() is glibc
    assert keep_freed_memory() is glibc  # (idempotent)


def test_the_command_line_and_the_workers_set_it():
    """Where torch's threads are chosen, the allocator is set too (a source check: both run in the
    user's process only when a colourisation starts)."""
    from pathlib import Path

    import napari_colorize

    src = Path(napari_colorize.__file__).parent
    for f in ("cli.py", "_widgets/_workers.py"):
        text = (src / f).read_text()
        assert text.count("keep_freed_memory()") >= 1 and text.count("keep_freed_memory()") >= \
            text.count("set_threads(") - text.count("import set_threads"), f
