"""Torch's threads on a busy machine: a 20-slice stack with 2 threads against the automatic choice.

    python benchmarks/bench_threads.py [--busy] [--slices 20] [--repeats 2]

``--busy`` starts one process that keeps a core busy (``while True: pass``) for the run and ends it
after. Prints a Markdown table (copied into docs/BENCHMARKS.md) with the load average.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import torch

import napari_colorize as nc
from napari_colorize.threads import choose_threads


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--busy", action="store_true", help="keep one core busy during the run")
    ap.add_argument("--slices", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 4000, (a.slices, 512, 512)).astype(np.uint16)
    ref = (rng.random((300, 300, 3)) * 255).astype(np.uint8)
    ref[..., 0] = np.linspace(0, 255, 300)[None, :].astype(np.uint8)
    model = nc.load_model("exemplar", device="cpu")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if a.busy else None
    try:
        time.sleep(2.0 if a.busy else 0.0)  # (the spinner on its core before the choice is made)
        rows = {}
        for _ in range(a.repeats):
            for label in ("2 threads", "automatic"):
                n = 2 if label == "2 threads" else choose_threads(environ={})[0]
                torch.set_num_threads(n)
                t = time.perf_counter()
                nc.colorize(model, stack, reference=ref, return_attention=False)
                rows.setdefault(label, (n, []))[1].append(time.perf_counter() - t)
        load = os.getloadavg()[0]
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    print(f"\n### {a.slices} x 512 x 512 uint16 stack, exemplar, default temporal smoothing"
          f"{', one core kept busy' if a.busy else ''} (load average {load:.1f} at the end)\n")
    print("| threads | n | seconds (each run) |")
    print("|---|---:|---|")
    for label, (n, ts) in rows.items():
        print(f"| {label} | {n} | {', '.join(f'{t:.1f}' for t in ts)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
