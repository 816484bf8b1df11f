"""How many threads torch gets: asked for > NAPARI_COLORIZE_THREADS > OMP_NUM_THREADS > idle cores."""
import os

import pytest

from napari_colorize import threads


def test_idle_cores_at_least_one_at_most_all():
    pick = lambda busy, cores=2: threads.choose_threads(environ={}, cores=cores, busy=busy)[0]  # noqa: E731
    assert pick(0.0) == 2  # an idle machine: every core
    assert pick(0.2) == 2 and pick(0.6) == 1  # (rounded)
    assert pick(1.0) == 1  # the other core busy: one thread
    assert pick(7.5) == 1  # a machine far over its cores: still one
    assert pick(3.2, cores=8) == 5 and pick(0.0, cores=8) == 8


def test_the_users_number_wins():
    env = {threads.ENV: "3", "OMP_NUM_THREADS": "1"}
    assert threads.choose_threads(4, environ=env, cores=2, busy=1.0) == (4, "asked for")
    assert threads.choose_threads(environ=env, cores=2, busy=1.0)[0] == 3  # more than the cores: as asked
    assert threads.choose_threads(environ={"OMP_NUM_THREADS": "2"}, cores=2, busy=1.0)[0] == 2
    # values that are not positive integers are ignored
    assert threads.choose_threads(environ={threads.ENV: "many", "OMP_NUM_THREADS": "0"}, cores=2, busy=1.0)[0] == 1
    for bad in (0, -1, "x", True):
        with pytest.raises(ValueError, match="threads"):
            threads.choose_threads(bad)


def test_cores_from_the_affinity_and_busy_cores_from_the_system(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3}, raising=False)
    assert threads.available_cores() == 2
    monkeypatch.setattr(threads, "_cpu_times", lambda: None)  # no /proc/stat: the load average
    monkeypatch.setattr(os, "getloadavg", lambda: (1.3, 0.5, 0.2))
    assert threads.busy_cores() == pytest.approx(1.3)
    monkeypatch.delenv(threads.ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.choose_threads() == (1, "1 of 2 core(s) idle")
    samples = iter([(100.0, 200.0), (150.0, 300.0)])  # half of the machine's time idle over the sample
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    # (our own CPU time held still: with a sample of 0 s, one 10 ms clock tick of this process over the
    # microseconds elapsed read as hundreds of busy cores of our own, and the result fell to 0 - a flake)
    monkeypatch.setattr(os, "times", lambda: (1.0, 1.0, 0.0, 0.0, 0.0))
    assert threads.busy_cores(0.0) == pytest.approx(2.0, abs=0.2)  # (less our own: none here)


def test_set_threads_sets_torch(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        assert threads.set_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv(threads.ENV, "2")
        assert threads.set_threads() == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_huge_number_of_threads_is_capped(monkeypatch):
    """--threads 99999 (or NAPARI_COLORIZE_THREADS=99999) crashed torch (a segmentation fault): at most 4 per core."""
    n, why = threads.choose_threads(99999, environ={}, cores=2, busy=0.0)
    assert n == 8 == threads.max_threads(2) and "99999 threads asked for, capped at 8" in why
    assert threads.choose_threads(8, environ={}, cores=2, busy=0.0) == (8, "asked for")  # (4 per core: as asked)
    n, why = threads.choose_threads(environ={threads.ENV: "99999"}, cores=3, busy=0.0)
    assert n == 12 and f"from {threads.ENV}, capped at 12" in why
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "available_cores", lambda: 1)
    try:
        with pytest.warns(UserWarning, match="capped at 4"):
            assert threads.set_threads(99999) == 4
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)


def test_bench_caps_its_threads_too(monkeypatch):
    torch = pytest.importorskip("torch")
    from napari_colorize.bench import bench_forward

    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "available_cores", lambda: 1)
    try:
        with pytest.warns(UserWarning, match="capped at 4"):
            rows = bench_forward("welsh", sizes=(16,), repeats=1, threads=99999)
        assert len(rows) == 1 and torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)
