"""Timing helpers shared by ``napari-colorize bench`` and ``benchmarks/``."""

from __future__ import annotations

import time

import numpy as np
import torch

__all__ = ["bench_forward", "timeit"]


def timeit(fn, repeats: int = 20, warmup: int = 3) -> dict:
    """Median and min wall time of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return {"median_ms": 1000 * float(np.median(ts)), "min_ms": 1000 * float(np.min(ts))}


def bench_forward(model: str = "exemplar", sizes=(224,), repeats: int = 20, threads: int = 2,
                  pretrained: bool = False, progress=None, started=None) -> list[dict]:
    """Forward time of one target/reference pair (exemplar) or target/histogram, on the CPU.

    Networks are timed on their forward pass, with random weights unless ``pretrained`` (the
    time does not depend on them); the classic baselines (no network) on ``predict`` with a
    prepared reference, the same work they do per slice in :func:`colorize`. ``started(size, k,
    n)`` before and ``progress(row)`` after each size (the row as returned). Raises MemoryError, before
    allocating, when a size's attention would not fit in the free memory (the check ``colorize`` makes,
    :func:`~napari_colorize.plan.check_memory`; every size is checked before the first is timed).
    """
    from .models.registry import load_model
    from .plan import check_memory
    from .threads import set_threads

    set_threads(threads)  # (capped at 4 per core: tens of thousands crash torch)
    m = load_model(model, device="cpu", pretrained=pretrained)
    net = getattr(m, "network", None)
    for s in sizes:  # (one pair at s x s, as timed below)
        check_memory(m, (int(s), int(s)), size_name="sizes")
    rows = []
    for k, s in enumerate(sizes, 1):
        if started is not None:
            started(s, k, len(sizes))
        L = torch.rand(1, 1, s, s) * 2 - 1
        if net is None:  # a baseline: the reference's Lab once, then predict
            state = m.prepare(reference=torch.rand(1, 3, s, s))
            fn = lambda: m.predict(L, state)  # noqa: E731
        elif m.kind == "exemplar":
            ref = torch.rand(1, 3, s, s)
            fn = lambda: net(L, ref)  # noqa: E731
        else:
            h = torch.rand(1, 21, 21)
            h = h / h.sum()
            fn = lambda: net(L, h)  # noqa: E731
        with torch.inference_mode():
            r = timeit(fn, repeats)
        rows.append({"model": model, "size": s, **r})
        if progress is not None:
            progress(rows[-1])
    return rows
