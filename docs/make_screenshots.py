"""Render the napari screenshot in docs/images from the real widgets (the README's main job).

    python docs/make_screenshots.py        # with no display it re-runs itself under xvfb-run
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).parent / "images"

if __name__ == "__main__":
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        sys.exit(subprocess.call(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, __file__]))
    import napari_colorize  # noqa: F401  (torch before Qt)
    from napari_colorize._widgets._demo import open_demo
    from napari_colorize.cli import best_default_model

    OUT.mkdir(parents=True, exist_ok=True)
    open_demo(best_default_model(), screenshot=OUT / "napari_exemplar.png")
