"""How many threads torch uses: as many as there are idle cores, unless the user said how many.

On a machine whose other cores are busy, torch's threads wait for each other and spin: a stack that
takes 3.3 s on one thread took 20-45 s on two while another job kept one of the two cores busy
(docs/BENCHMARKS.md). :func:`set_threads` is called at the start of every colourisation by the
command line and by the napari widgets; library users call it themselves::

    import napari_colorize as nc
    nc.set_threads()      # torch's threads = the idle cores now (at least 1)
    nc.set_threads(4)     # or a number

The choice, first that applies: the number asked for (``--threads N`` on the command line), the
``NAPARI_COLORIZE_THREADS`` environment variable, ``OMP_NUM_THREADS``, else the cores this process
may run on (``os.sched_getaffinity``) less those other processes keep busy now (``/proc/stat``
sampled for 0.1 s, or the 1-minute load average where there is none), at least 1. A number asked for
(or set in the environment) is capped at ``MAX_PER_CORE`` (4) threads per core, with a warning: more
only makes threads wait for each other, and tens of thousands crash torch (a segmentation fault).
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Mapping

__all__ = ["ENV", "MAX_PER_CORE", "max_threads", "available_cores", "busy_cores", "choose_threads", "set_threads"]

#: the environment variable that fixes the number of threads
ENV = "NAPARI_COLORIZE_THREADS"
_SAMPLE_S = 0.1  # how long /proc/stat is watched
_REUSE_S = 5.0  # a choice is reused this long (a live preview per brush stroke does not sample each time)
_last: tuple[float, int] | None = None  # (when, threads) of the last automatic choice
#: the most threads asked for that are used, per core this process may run on
MAX_PER_CORE = 4


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def max_threads(cores: int | None = None) -> int:
    """The most threads used: ``MAX_PER_CORE`` per core (``cores``, default :func:`available_cores`)."""
    return MAX_PER_CORE * (available_cores() if cores is None else max(1, int(cores)))


def _cpu_times() -> tuple[float, float] | None:
    """(idle, total) jiffies of all cores from /proc/stat, or None."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    if len(fields) < 5:
        return None
    return fields[3] + fields[4], sum(fields)  # idle + iowait


def busy_cores(sample: float = _SAMPLE_S) -> float:
    """How many cores other processes keep busy now: the machine's use over ``sample`` seconds
    (``/proc/stat``) less this process's own, or the 1-minute load average where /proc/stat is missing
    (0 when neither is known)."""
    a = _cpu_times()
    if a is not None:
        own0, t0 = sum(os.times()[:2]), time.monotonic()
        time.sleep(sample)
        b = _cpu_times()
        own = (sum(os.times()[:2]) - own0) / max(1e-6, time.monotonic() - t0)
        if b is not None and b[1] > a[1]:
            busy = (1.0 - (b[0] - a[0]) / (b[1] - a[1])) * (os.cpu_count() or 1)
            return max(0.0, busy - own)
    try:
        return max(0.0, float(os.getloadavg()[0]))
    except (AttributeError, OSError):
        return 0.0


def _positive(value) -> int | None:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return n if n >= 1 else None


def choose_threads(requested: int | None = None, *, environ: Mapping[str, str] | None = None,
                   cores: int | None = None, busy: float | None = None) -> tuple[int, str]:
    """``(threads, why)``: ``requested`` when given (a positive int), else ``NAPARI_COLORIZE_THREADS``,
    else ``OMP_NUM_THREADS`` (positive integers; other values are ignored), else the idle cores:
    ``cores`` (default :func:`available_cores`) less ``busy`` (default :func:`busy_cores`), rounded,
    at least 1 and at most ``cores``. A number asked for or from the environment is capped at
    :func:`max_threads` (4 per core); then ``why`` says so ("... capped at ...")."""
    cores = available_cores() if cores is None else max(1, int(cores))

    def capped(n: int, why: str) -> tuple[int, str]:
        top = max_threads(cores)
        if n <= top:
            return n, why
        return top, (f"{n} threads {why}, capped at {top} ({MAX_PER_CORE} per core, {cores} core(s): more only "
                     "make threads wait for each other)")

    if requested is not None:
        n = _positive(requested) if not isinstance(requested, bool) else None
        if n is None:
            raise ValueError(f"the number of threads must be a positive integer, not {requested!r}")
        return capped(n, "asked for")
    environ = os.environ if environ is None else environ
    for var in (ENV, "OMP_NUM_THREADS"):
        n = _positive(environ.get(var))
        if n is not None:
            return capped(n, f"from {var}")
    busy = busy_cores() if busy is None else max(0.0, float(busy))
    n = min(cores, max(1, int(round(cores - busy))))
    return n, f"{n} of {cores} core(s) idle"


def set_threads(requested: int | None = None) -> int:
    """Set torch's intra-op threads (:func:`choose_threads`) and return how many. An automatic choice
    is reused for a few seconds (a live preview asks at every brush stroke). A number capped at
    :func:`max_threads` is warned about (a UserWarning saying so)."""
    global _last
    if requested is None and _last is not None and time.monotonic() - _last[0] < _REUSE_S \
            and _positive(os.environ.get(ENV)) is None and _positive(os.environ.get("OMP_NUM_THREADS")) is None:
        n = _last[1]
    else:
        n, why = choose_threads(requested)
        _last = (time.monotonic(), n) if why.endswith("idle") else None
        if "capped at" in why:
            warnings.warn(why, UserWarning, stacklevel=2)
    import torch  # (here: the command line lists models without torch)

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
