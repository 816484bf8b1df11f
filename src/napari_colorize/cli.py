"""Command line: ``napari-colorize {models,colorize,bench,demo}``."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .io import read_image, write_image

__all__ = ["main"]

DEFAULT_PREFERENCE = ("exemplar", "welsh")


def best_default_model() -> str:
    """The best shipped exemplar model: the trained network when its weights are installed, else Welsh."""
    from .models.registry import list_models

    names = list_models()
    return next(n for n in DEFAULT_PREFERENCE if n in names)


def _cmd_models(args) -> int:
    from .models.registry import list_models, model_info

    names = list_models(include_untrained=True)
    available = set(list_models())
    print(f"{'name':20s} {'kind':10s} {'weights':9s} description")
    for n in names:
        e = model_info(n)
        w = "-" if e.architecture == "baseline" else ("yes" if n in available else "no")
        print(f"{n:20s} {e.kind:10s} {w:9s} {e.description}")
    return 0


def _cmd_colorize(args) -> int:
    from tqdm import tqdm

    from . import colorize, load_model

    targets = [Path(t) for t in args.targets]
    many = len(targets) > 1
    out = Path(args.output)
    if many and out.suffix:
        raise SystemExit(f"error: with {len(targets)} targets, -o must be a directory, not {out}")
    model = load_model(args.model or best_default_model(), device=args.device)
    guide = {}
    if args.reference:
        guide["reference"] = read_image(args.reference)
    elif args.histogram_from:
        from .color import histogram_from_rgb
        from .inference import prepare_reference

        if model.kind != "histogram":
            raise ValueError(f"{model.name!r} is an exemplar model: use --reference, not --histogram-from")
        guide["histogram"] = histogram_from_rgb(prepare_reference(read_image(args.histogram_from)))
    else:
        guide["histogram"] = np.load(args.histogram, allow_pickle=False)
    bar = tqdm(targets, desc="colourising", unit="image", disable=args.quiet or not many)
    for t in bar:
        dest = (out / (t.stem + "_colour" + args.suffix)) if many else out
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = colorize(model, read_image(t), size=args.size, **guide)
        for w in res.warnings:
            print(f"warning: {t.name}: {w}", file=sys.stderr)
        write_image(dest, res.rgb)
        if not many and not args.quiet:
            print(f"wrote {dest} ({res.model}, working size {res.working_shape[0]}x{res.working_shape[1]})")
    if many and not args.quiet:
        print(f"wrote {len(targets)} image(s) to {out}/")
    return 0


def _has_display() -> bool:
    import os

    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _napari_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("napari") is not None


def _cmd_demo(args) -> int:
    """Colourise the sample pair. In napari when it is installed (with no display: rendered under a
    virtual X server, written as a screenshot); otherwise, or with --no-viewer, as a PNG."""
    import shutil
    import subprocess

    name = args.model or best_default_model()
    if not args.no_viewer and _napari_available():
        if _has_display() or (args.screenshot and not shutil.which("xvfb-run")):
            from ._widgets._demo import open_demo

            open_demo(name, screenshot=args.screenshot, result=args.output if args.screenshot else None)
            if args.screenshot:
                print(f"wrote {Path(args.output).resolve()}")
            return 0
        if shutil.which("xvfb-run"):
            print("no display: rendering the viewer under a virtual X server (xvfb-run)")
            cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, "-m", "napari_colorize.cli",
                   "demo", "--model", name, "--output", str(args.output), "--screenshot",
                   str(args.screenshot or Path(args.output).with_name(Path(args.output).stem + "-viewer.png"))]
            return subprocess.call(cmd)
        print("no display and no xvfb-run: writing the result without the viewer")
    return _demo_png(name, args)


def _demo_png(name: str, args) -> int:
    from . import colorize, load_model
    from ._sample_data import sample_pair
    from .metrics import his, ssim

    grey, ref, truth = sample_pair()
    model = load_model(name, device=args.device)
    t0 = time.perf_counter()
    res = colorize(model, grey, reference=ref)
    dt = time.perf_counter() - t0
    out = write_image(args.output, res.rgb)
    print(f"model: {name}  ({model.kind}; {dt:.2f} s colourising)")
    print(f"target: scikit-image motorcycle_left (grey {grey.shape[1]}x{grey.shape[0]}), "
          f"reference: motorcycle_right")
    print(f"HIS vs reference {his(res.rgb, ref):.3f}   SSIM vs ground truth {ssim(res.rgb, truth):.3f}")
    print(f"wrote {out.resolve()}")
    return 0


def _cmd_bench(args) -> int:
    from .bench import bench_forward

    rows = bench_forward(args.model, sizes=args.sizes, repeats=args.repeats, threads=args.threads)
    print(f"{'model':20s} {'size':>6s} {'median ms':>10s} {'min ms':>8s}")
    for r in rows:
        print(f"{r['model']:20s} {r['size']:6d} {r['median_ms']:10.1f} {r['min_ms']:8.1f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="napari-colorize", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("models", help="list the models").set_defaults(func=_cmd_models)

    c = sub.add_parser("colorize", help="colourise one or many images")
    c.add_argument("targets", nargs="+", help="greyscale image(s) or stacks (.png, .jpg, .tif, .npy)")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--reference", "-r", help="colour reference image")
    g.add_argument("--histogram-from", help="use the ab histogram of this colour image")
    g.add_argument("--histogram", help="a (21, 21) ab histogram saved with numpy.save")
    c.add_argument("--model", "-m", default=None, help="model name or checkpoint (default: the best shipped)")
    c.add_argument("--output", "-o", required=True, help="output file (one target) or directory (many)")
    c.add_argument("--suffix", default=".png", help="output type with many targets (.png, .tif, .npy)")
    c.add_argument("--size", type=int, default=None, help="working long side in pixels")
    c.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    c.add_argument("--quiet", "-q", action="store_true")
    c.set_defaults(func=_cmd_colorize)

    d = sub.add_parser("demo", help="colourise the bundled sample pair (in napari when installed)")
    d.add_argument("--model", "-m", default=None)
    d.add_argument("--output", "-o", default="napari-colorize-demo.png", help="the result as PNG")
    d.add_argument("--device", default="auto")
    d.add_argument("--no-viewer", action="store_true", help="do not open napari; just write the result")
    d.add_argument("--screenshot", default=None, help="render the viewer to this PNG and exit")
    d.set_defaults(func=_cmd_demo)

    b = sub.add_parser("bench", help="time the network forward pass")
    b.add_argument("--model", "-m", default="exemplar")
    b.add_argument("--sizes", type=int, nargs="+", default=[224])
    b.add_argument("--repeats", type=int, default=20)
    b.add_argument("--threads", type=int, default=2)
    b.set_defaults(func=_cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, TypeError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
