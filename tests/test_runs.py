"""Interrupted and concurrent runs: SIGTERM cleans up as Ctrl-C does, a store whose creation was
interrupted is made again, two runs never write the same store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from PIL import Image

from napari_colorize import volume
from napari_colorize.cli import main
from napari_colorize.volume import BusyError, VolumeNote, colorize_volume

ROOT = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)] + [env.get("PYTHONPATH", "")])
    return env


@pytest.fixture
def ref(rng):
    return (rng.random((32, 32, 3)) * 255).astype(np.uint8)


def test_sigterm_mid_batch_leaves_no_part_file(tmp_path, rng, ref):
    for k in range(3):
        np.save(tmp_path / f"s{k}.npy", rng.random((6, 128, 128)).astype(np.float32))
    Image.fromarray(ref).save(tmp_path / "ref.png")
    out = tmp_path / "out"
    args = ["colorize", *[str(tmp_path / f"s{k}.npy") for k in range(3)], "-r", str(tmp_path / "ref.png"),
            "-m", "reinhard", "--temporal", "0", "-o", str(out) + "/", "-q"]
    # each slice's write is followed by a pause, so the run is surely mid-file when the signal comes
    # (on a fast machine the whole run took less than one poll of the loop below)
    code = textwrap.dedent(f"""
        import sys, time
        from napari_colorize import io
        from napari_colorize.cli import main
        real = io.StackWriter.__setitem__
        def slow(self, index, rgb):
            real(self, index, rgb)
            time.sleep(0.5)
        io.StackWriter.__setitem__ = slow
        sys.exit(main({args!r}))
    """)
    p = subprocess.Popen([sys.executable, "-c", code], env=_env(), stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (out.exists() and any(f.name.startswith(".") for f in out.iterdir())):  # a .part file: mid-write
        assert p.poll() is None and time.time() - t0 < 120, "the run ended before it could be stopped"
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert "Traceback" not in err and "interrupted" in err
    assert [f.name for f in out.iterdir() if f.name.startswith(".")] == []  # no .part file left


def _killed_while_creating(out: Path, vol_path: Path, ref_path: Path) -> None:
    """A run killed (os._exit: no clean-up runs) while its output store is being created."""
    code = textwrap.dedent(f"""
        import os, zarr, numpy as np
        from napari_colorize import volume
        real = zarr.Group.create_array
        def create_array(self, name, *a, **k):
            if name == volume.PROGRESS_ARRAY:
                os._exit(9)
            return real(self, name, *a, **k)
        zarr.Group.create_array = create_array
        volume.colorize_volume({str(vol_path)!r}, {str(out)!r}, "reinhard", reference={str(ref_path)!r},
                               scheduler="synchronous", temporal=0)
    """)
    r = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 9, r.stderr


def test_a_store_interrupted_while_created_is_made_again(tmp_path, rng, ref, capsys):
    vol = (rng.random((3, 32, 32)) * 60000).astype(np.uint16)
    z = zarr.create_array(str(tmp_path / "in.zarr"), shape=vol.shape, chunks=(1, 32, 32), dtype=vol.dtype)
    z[:] = vol
    Image.fromarray(ref).save(tmp_path / "ref.png")
    out = tmp_path / "o.zarr"
    _killed_while_creating(out, tmp_path / "in.zarr", tmp_path / "ref.png")
    assert out.exists() and volume.half_created(out)
    code = main(["colorize", str(tmp_path / "in.zarr"), "-r", str(tmp_path / "ref.png"), "-m", "reinhard",
                 "-o", str(out), "--temporal", "0", "-q"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "half-created by an interrupted run" in err
    assert zarr.open_group(str(out), mode="r").attrs[volume.RECORD_KEY]["complete"]


@pytest.mark.parametrize("attrs", [{}, {volume.RECORD_KEY: {"fingerprint": "0" * 64, "complete": False}}])
def test_an_empty_or_flagless_store_is_made_again(tmp_path, rng, ref, attrs):
    out = tmp_path / "o.zarr"
    g = zarr.open_group(str(out), mode="w-")
    g.attrs.update(attrs)
    with pytest.warns(VolumeNote, match="half-created"):
        colorize_volume(rng.random((2, 16, 16)), out, "reinhard", reference=ref, scheduler="synchronous")
    assert zarr.open_group(str(out), mode="r").attrs[volume.RECORD_KEY]["complete"]


def test_a_store_of_another_program_is_not_taken_for_half_created(tmp_path, rng, ref):
    out = tmp_path / "o.zarr"
    g = zarr.open_group(str(out), mode="w-")
    g.create_array("data", shape=(4,), dtype="uint8")
    with pytest.raises(volume.ResumeError, match="not replaced"):
        colorize_volume(rng.random((2, 16, 16)), out, "reinhard", reference=ref, scheduler="synchronous")
    assert "data" in zarr.open_group(str(out), mode="r")


def test_a_second_run_on_the_same_store_is_refused(tmp_path, rng, ref, capsys):
    vol = (rng.random((2, 16, 16)) * 255).astype(np.uint8)
    np.save(tmp_path / "in.npy", vol)
    Image.fromarray(ref).save(tmp_path / "ref.png")
    out = tmp_path / "o.zarr"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a run that writes it
    try:
        lock = volume.RunLock(out).path
        lock.write_text(f"{other.pid} {os.uname().nodename}\n")
        with pytest.raises(BusyError, match=rf"another run \(pid {other.pid}\) is writing .*o\.zarr"):
            colorize_volume(vol, out, "reinhard", reference=ref, scheduler="synchronous")
        code = main(["colorize", str(tmp_path / "in.npy"), "-r", str(tmp_path / "ref.png"), "-m", "reinhard",
                     "-o", str(out), "-q"])
        err = capsys.readouterr().err
        assert code == 2 and f"error: another run (pid {other.pid}) is writing" in err
        assert not out.exists()
    finally:
        other.kill()
        other.wait()
    # the lock of a process that ended is taken over; the run's own lock is removed when it ends
    colorize_volume(vol, out, "reinhard", reference=ref, scheduler="synchronous")
    assert zarr.open_group(str(out), mode="r").attrs[volume.RECORD_KEY]["complete"]
    assert not lock.exists()


def test_two_runs_at_once_one_writes_the_other_is_refused(tmp_path, rng, ref, capsys):
    vol = (rng.random((8, 32, 32)) * 255).astype(np.uint8)
    np.save(tmp_path / "in.npy", vol)
    Image.fromarray(ref).save(tmp_path / "ref.png")
    out = tmp_path / "o.zarr"
    slow = textwrap.dedent(f"""
        import time
        from napari_colorize.volume import colorize_volume
        colorize_volume({str(tmp_path / "in.npy")!r}, {str(out)!r}, "reinhard", reference={str(tmp_path / "ref.png")!r},
                        temporal=0, scheduler="synchronous", progress=lambda d, t: time.sleep(0.5))
    """)  # (a run of 8 chunks that takes 4 s at least)
    first = subprocess.Popen([sys.executable, "-c", slow], env=_env(), stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not volume.RunLock(out).path.exists():
        assert first.poll() is None and time.time() - t0 < 120, first.communicate()[1]
        time.sleep(0.05)
    second = main(["colorize", str(tmp_path / "in.npy"), "-r", str(tmp_path / "ref.png"), "-m", "reinhard",
                   "-o", str(out), "-q", "--temporal", "0"])
    second_err = capsys.readouterr().err
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second == 2 and f"another run (pid {first.pid}) is writing" in second_err, second_err
    assert zarr.open_group(str(out), mode="r").attrs[volume.RECORD_KEY]["complete"]


def test_a_lock_file_is_never_seen_empty(tmp_path):
    """A second run reading the lock while the first creates it must find its process id: an empty lock
    would be taken for a stale one and taken over, and both runs would write the store."""
    import threading

    lock = volume.RunLock(tmp_path / "o.zarr")
    seen, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                seen.append(lock.path.read_text())
            except FileNotFoundError:
                pass

    reader = threading.Thread(target=read)
    reader.start()
    try:  # 300 rounds, and more until the reader has seen the lock at least once (a busy machine may not
        # give the reader a turn in 300: an empty `seen` proves nothing)
        deadline, rounds = time.monotonic() + 30, 0
        while rounds < 300 or (not seen and time.monotonic() < deadline):
            lock.acquire()
            lock.release()
            rounds += 1
    finally:
        stop.set()
        reader.join()
    assert seen and all(text.startswith(f"{os.getpid()} ") for text in seen)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no lock, no temporary file left


def test_a_store_another_run_is_creating_is_busy_not_foreign(tmp_path, rng, ref):
    """Another live run holds the lock and its store is not a zarr store yet (being created): the answer is
    "busy", not "exists and is not a zarr store" (which a second run gave when it came at that moment)."""
    import socket

    np.save(tmp_path / "in.npy", (rng.random((2, 16, 16)) * 255).astype(np.uint8))
    Image.fromarray(ref).save(tmp_path / "ref.png")
    out = tmp_path / "o.zarr"
    out.mkdir()  # (what a store is for a moment while it is created)
    lock = volume.RunLock(out)
    lock.path.write_text(f"{os.getppid()} {socket.gethostname()}\n")  # (a live process that is not this one)
    with pytest.raises(BusyError, match=f"another run \\(pid {os.getppid()}\\) is writing"):
        colorize_volume(str(tmp_path / "in.npy"), out, "reinhard", reference=str(tmp_path / "ref.png"),
                        scheduler="synchronous", temporal=0)
    assert lock.path.exists() and out.is_dir()  # neither the other run's lock nor its store touched
