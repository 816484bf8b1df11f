"""Volumes on dask.distributed: slices per second with 1 and 2 worker processes, and the peak
memory of each worker.

    python benchmarks/bench_volume.py [--model exemplar] [--slices 32] [--size 512] [--chunk 2]

A synthetic uint16 volume (smoothed noise, ``slices x size x size``, chunks of ``chunk`` slices) is
written to a temporary zarr store and colourised into OME-Zarr by ``colorize_volume`` on a
``LocalCluster`` on loopback (``threads_per_worker=1``), once per worker count, and once with
local threads (no cluster) for comparison. The time includes the scheduling and the writing,
not the cluster's start nor the workers' loading of the model (done first, timed apart: the
per-process model cache then serves every task). Peak memory: each worker process's maximum resident set size
(``getrusage``), read after the run. Prints a Markdown table (copied into docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_volume(path: Path, slices: int, size: int, chunk: int) -> np.ndarray:
    import zarr
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    vol = gaussian_filter(rng.random((slices, size, size)), (1.5, 6, 6))
    vol = ((vol - vol.min()) / (np.ptp(vol) + 1e-12) * 40000 + 1000).astype(np.uint16)
    z = zarr.create_array(str(path), shape=vol.shape, chunks=(chunk, size, size), dtype="uint16")
    z[:] = vol
    return vol


def _warm_up(model: str) -> None:
    from napari_colorize.volume import worker_model

    worker_model(model, "auto")


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="exemplar")
    ap.add_argument("--slices", type=int, default=32)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--chunk", type=int, default=2)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()

    from distributed import Client, LocalCluster

    from napari_colorize._sample_data import sample_pair
    from napari_colorize.volume import colorize_volume

    _, ref, _ = sample_pair()
    tmp = Path(tempfile.mkdtemp(prefix="bench-volume-"))
    try:
        src = tmp / "in.zarr"
        synthetic_volume(src, args.slices, args.size, args.chunk)
        rows = []
        for n in args.workers:
            with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address=None) as cluster, Client(cluster, set_as_default=False) as client:
                # warm up: each worker imports torch and loads the model once (timed apart)
                t0 = time.perf_counter()
                client.run(_warm_up, args.model)
                warm = time.perf_counter() - t0
                out = tmp / f"out-{n}.zarr"
                t0 = time.perf_counter()
                colorize_volume(src, out, args.model, reference=ref, client=client)
                dt = time.perf_counter() - t0
                rss = client.run(_peak_rss_mb)
            rows.append((f"{n} worker{'s' if n > 1 else ''} (processes)", dt, max(rss.values()), warm))
        out = tmp / "out-local.zarr"
        t0 = time.perf_counter()
        colorize_volume(src, out, args.model, reference=ref)
        rows.append(("local threads, no cluster", time.perf_counter() - t0, None, None))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.slices} x {args.size} x {args.size} uint16, chunks of {args.chunk} slices, model {args.model!r}\n")
    print("| run | model loading per worker, s | seconds | slices / s | peak RSS per worker |")
    print("|---|---:|---:|---:|---:|")
    for name, dt, rss, warm in rows:
        mem = f"{rss:.0f} MB" if rss is not None else "-"
        print(f"| {name} | {'-' if warm is None else f'{warm:.1f}'} | {dt:.1f} | {args.slices / dt:.2f} | {mem} |")


if __name__ == "__main__":
    main()
