"""Command line: ``napari-colorize {models,colorize,suggest,demo,bench}``.

``colorize`` checks everything it can before computing anything: every output path (known type,
a folder that exists and is writable, not an input, not an existing file unless ``--overwrite``,
a stack only to .tif/.npy), the model and the guide. Then each target is read, colourised slice by
slice and written slice by slice; a target that fails is reported on one line and the others are
still done. Exit status: 0 everything written, 1 some files failed, 2 nothing written.

Heavy modules (torch, the models) are imported inside the commands, not at import time.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

__all__ = ["main"]

#: the exemplar widget's display name in napari.yaml (the demo docks it through napari's plugin system)
EXEMPLAR_WIDGET = "Exemplar colourisation"


def best_default_model(kind: str = "exemplar") -> str:
    """The registry's default model of a kind (:func:`napari_colorize.models.registry.default_model`),
    with the command line's advice when none is installed."""
    from .models.registry import default_model

    try:
        return default_model(kind)
    except ValueError as e:
        raise ValueError(f"{e}: give one with -m (a checkpoint file)") from None


class _Refused(Exception):
    """The command cannot run; the lines say why. Nothing was written."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


_FLAG_WORDS = {"rgb=True": "--rgb", "rgb=False": "--grey", "overwrite=True": "--overwrite"}
_FLAGS = {"channel_axis": "--channel-axis", "channel": "--channel", "size": "--size", "normalize": "--normalize",
          "rgb": "--rgb", "pyramid": "--pyramid",
          "temporal": "--temporal"}


def cli_words(msg: str) -> str:
    """A library message in the command line's words: Python keywords become the flags that do the same."""
    for k, v in _FLAG_WORDS.items():
        msg = msg.replace(k, v)
    msg = re.sub(r"\breference=(RGB image|\.\.\.)", "--reference IMAGE", msg)
    msg = re.sub(r"\bhistogram=(\(21, 21\) array|\.\.\.)", "--histogram FILE.npy", msg)
    msg = re.sub(r"\b(channel_axis|channel|size|normalize|pyramid)=(-?\w+)",
                 lambda m: f"{_FLAGS[m.group(1)]} {m.group(2)}", msg)
    return msg.replace("pass --", "use --")


def _say(prefix: str, msg: str) -> None:
    print(f"{prefix}: {cli_words(msg)}", file=sys.stderr)


def _out_of_memory(e: BaseException) -> bool:
    """A MemoryError, or torch's allocator failing (a RuntimeError: CPU or CUDA)."""
    from .plan import is_out_of_memory

    return isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and is_out_of_memory(e))


def _error_text(e: BaseException) -> str:
    """What an exception says, never empty (a bare ``MemoryError()`` has no text)."""
    if isinstance(e, MemoryError) and str(e):  # (ours say what needs the memory and what to do)
        return str(e)
    if _out_of_memory(e):
        return (f"out of memory ({e}); " if str(e) else "out of memory; ") + \
            "try a smaller --size, a smaller input, or close other programs"
    return str(e) or type(e).__name__


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


def _file_key(p: Path) -> tuple:
    """What identifies the file ``p`` names: its device and inode when it exists (``./``, ``..``, symlinks,
    hard links and case-insensitive file systems included), else its resolved path. Two paths name the same
    file when their keys are equal; a set of keys answers "is this one of those files?" at once."""
    try:
        st = os.stat(p)
        return ("file", st.st_dev, st.st_ino)
    except OSError:
        return ("path", str(Path(p).resolve()))


def _same_file(a: Path, b: Path) -> bool:
    """True when a and b are the same file (:func:`_file_key`)."""
    return _file_key(a) == _file_key(b)


def _check_folder(folder: Path, create: bool) -> str | None:
    """Why ``folder`` cannot receive files (None when it can)."""
    if folder.exists():
        if not folder.is_dir():
            return f"{folder} is a file, not a folder"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"cannot write into {folder}/ (permission denied)"
        return None
    if not create:
        return f"the folder {folder}/ does not exist"
    parent = folder
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file: -o {folder}/ cannot be created under it"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {folder}/ (no permission to write into {parent}/)"
    return None


def _plan(args) -> tuple[list, dict, Path | None]:
    """Read the targets' shapes and decide every output path; refuse before any work.

    Returns ``(jobs, failed, folder)``: jobs ``[(target, dest, stack, rgb)]`` (``rgb``: what ``iter_colorize``
    is told - the flags, else what the file says), ``failed`` {target: reason} for targets that cannot be read,
    and the output folder to create (or None).
    """
    import warnings

    from .inputs import target_layout
    from .io import (STACK_SUFFIXES, WRITE_SUFFIXES, ImageReadError, ImageWriteError, check_output_format,
                     probe_layout)

    targets, seen = [], []
    refs = reference_files(args)
    guide_of: dict[tuple, str] = {}  # (file key -> what the guide is: the first named wins)
    for p, what in [(r, "the reference" if len(refs) == 1 else "a reference") for r in refs] + \
            [(args.histogram_from, "the histogram's image")]:
        if p:
            guide_of.setdefault(_file_key(Path(p)), what)
    seen_keys = set()
    for t in map(Path, args.targets):
        key = _file_key(t)
        if key in seen_keys:
            print(f"note: {t} is given twice; it is done once", file=sys.stderr)
            continue
        guide = guide_of.get(key)
        seen_keys.add(key)
        if guide and len(args.targets) > 1:  # (colorize scans/*.png -r scans/ref.png)
            print(f"note: skipping {t}: it is {guide}", file=sys.stderr)
            seen.append(t)
            continue
        seen.append(t)
        targets.append(t)
    if not targets:
        raise _Refused([f"nothing to colourise: the targets are the guide ({', '.join(map(str, seen))}); give the "
                        "grey images to colourise"])
    many = len(targets) > 1
    out_arg = args.output
    out = Path(out_arg)
    if out.name.lower() in {s.lower() for s in WRITE_SUFFIXES}:  # (-o .png: Path gives it no suffix, a hidden folder)
        raise _Refused([f"-o {out_arg} is only a suffix: give a file name (for example -o "
                        f"{out.with_name('colour' + out.name)}) or a folder"])
    to_folder = many or out_arg.endswith(("/", os.sep)) or out.is_dir() or not out.suffix
    problems: list[str] = []
    if many and not out.is_dir() and out.suffix and not out_arg.endswith(("/", os.sep)):
        raise _Refused([f"with {len(targets)} targets, -o must be a folder (for example -o results/), not {out}"])
    suffix = args.suffix
    if suffix is not None:
        suffix = suffix if suffix.startswith(".") else "." + suffix
        if suffix.lower() not in WRITE_SUFFIXES:
            raise _Refused([f"unknown output type --suffix {suffix}: use .png, .jpg, .tif or .npy"])
    if not to_folder and args.suffix is not None:
        print("note: --suffix is for output folders; the type of -o " + str(out) + " is its own suffix",
              file=sys.stderr)
    if args.dtype and not to_folder and out.suffix.lower() not in STACK_SUFFIXES and args.dtype != "uint8":
        problems.append(f"{out}: {out.suffix} files are written 8-bit; --dtype {args.dtype} needs .tif or .npy")

    failed: dict[Path, str] = {}
    jobs = []
    taken: dict[str, Path] = {}
    for t in targets:
        try:
            with warnings.catch_warnings(record=True) as said:  # (what the file's reading says: once, one line each)
                warnings.simplefilter("always")
                shape, _, colour = probe_layout(t, channel=args.channel)
                told = _rgb_flag(args)  # (--rgb / --grey / --channel-axis decide first, else what the file says)
                told = colour if told is None and args.channel_axis is None else told
                rgb, how, _ = target_layout(shape, told, args.channel_axis)
            for w in dict.fromkeys(str(n.message) for n in said):
                _say("warning", f"{t}: {_without_path(w, t)}")
        except (ImageReadError, ValueError) as e:
            failed[t] = _without_path(str(e), t)
            continue
        n_spatial = 3 if rgb else 2
        nd = len(shape) - (1 if how in ("drop last axis", "grey of grey+alpha") else 0)
        stack = nd > n_spatial
        if to_folder:
            suf = suffix or (".tif" if stack else ".png")
            name = f"{t.stem}_colour"
            dest = out / (name + suf)
            k = 2
            while dest.name.casefold() in taken:  # a/img.png and b/img.png: img_colour.png, img_colour-2.png
                dest = out / f"{name}-{k}{suf}"
                k += 1
            if k > 2:
                print(f"note: {t} -> {dest} ({taken[(out / (name + suf)).name.casefold()]} has the same name)",
                      file=sys.stderr)
            taken[dest.name.casefold()] = t
        else:
            dest = out
        try:
            check_output_format(dest, stack, args.dtype)
        except ImageWriteError as e:
            msg = str(e)
            if stack:
                msg = f"{t} is a stack of shape {shape}: {dest.suffix} holds one 2-D image; " + \
                    ("use --suffix .tif (or .npy)" if to_folder else "use -o with .tif (or .npy)")
            problems.append(msg)
            continue
        side = max(shape[nd - n_spatial:nd - n_spatial + 2], default=0)  # (the larger of H and W)
        if dest.suffix.lower() in (".jpg", ".jpeg") and side > 65500:  # (libjpeg's limit: found after the work)
            problems.append(f"{t} is {side} pixels wide or high: JPEG holds at most 65500; use .png or .tif")
            continue
        jobs.append((t, dest, stack, told))

    # every output against every input, existing files, folders
    inputs = list(targets) + [Path(p) for p in (*reference_files(args), args.histogram_from, args.histogram, args.hints) if p]
    folder = out if to_folder else None
    why = _check_folder(out if to_folder else out.parent, create=to_folder)
    if why:
        problems.append(f"-o {out_arg}: {why}")
    input_of = {}  # (file key -> the input's path as given: one lookup per output)
    for i in inputs:
        input_of.setdefault(_file_key(i), i)
    for t, dest, *_ in jobs:
        i = input_of.get(_file_key(dest))
        if i is not None:
            same = "" if str(dest) == str(i) else f" (the same file as {i})"
            problems.append(f"{dest} is an input{same}: it would be overwritten; choose another -o")
        if dest.is_dir():
            problems.append(f"{dest} is a folder; give a file name")
        elif os.path.lexists(dest) and not args.overwrite and i is None:
            problems.append(f"{dest} exists: it is not replaced unless you pass --overwrite")
        why = _sidecar_problem(dest, args)
        if why:
            problems.append(why)
    confidence = _confidence_outputs(args, jobs, inputs, many, problems)
    if problems:
        raise _Refused(list(dict.fromkeys(problems)))
    args.confidence_outputs = confidence
    return jobs, failed, folder


def _sidecar_problem(dest: Path, args) -> str | None:
    """Why the record of a file written to ``dest`` cannot go beside it (a format with no place for it, such
    as ``.npy``): a file of the sidecar's name that is not an earlier run's record, or an earlier run's
    record without its file and no ``--overwrite``. None when nothing is in the way."""
    from .io import can_embed
    from .provenance import check_sidecar, sidecar_path

    if args.no_provenance or can_embed(dest, ""):
        return None
    why = check_sidecar(dest)
    if why:
        return why
    if sidecar_path(dest).exists() and not dest.exists() and not args.overwrite:
        return f"{sidecar_path(dest)} exists (an earlier run's record): it is not replaced unless you pass --overwrite"
    return None


def _confidence_outputs(args, jobs: list, inputs: list, many: bool, problems: list) -> dict:
    """``--confidence``: the file of each target's match confidence (one target: the path given; several:
    ``STEM_confidence.png`` / ``.tif`` for stacks in the folder given, numbered as the colour files are:
    ``STEM_confidence-2.png`` beside ``STEM_colour-2.png``), checked like the outputs (the same file under
    another spelling included)."""
    if not args.confidence:
        return {}
    from .io import ImageWriteError, check_output_format

    base = Path(args.confidence)
    to_folder = many or args.confidence.endswith(("/", os.sep)) or base.is_dir() or not base.suffix
    if many and base.suffix and not base.is_dir():
        problems.append(f"with several targets, --confidence must be a folder (for example --confidence conf/), "
                        f"not {base}")
        return {}
    out = {}
    taken = {_file_key(d) for _, d, *_ in jobs} | {_file_key(i) for i in inputs}
    # (the colour files' paths case-folded: on a case-insensitive file system OUT.png and out.png are one file,
    # which the keys above cannot tell before either exists)
    folded = {str(d.resolve()).casefold(): d for _, d, *_ in jobs}
    for t, dest, stack, _ in jobs:
        c = base
        if to_folder:  # named after the colour: img_colour-2.png -> img_confidence-2.png (a/img.png and b/img.png)
            tail = dest.stem[len(f"{t.stem}_colour"):] if dest.stem.startswith(f"{t.stem}_colour") else ""
            c = base / f"{t.stem}_confidence{tail}{'.tif' if stack else '.png'}"
        if c.suffix.lower() in (".jpg", ".jpeg"):
            problems.append(f"--confidence {c}: a JPEG would change the confidence's values (lossy); "
                            "use .png (8-bit), .tif or .npy (float32)")
            continue
        try:
            check_output_format(c, stack, "float32" if c.suffix.lower() in (".tif", ".tiff", ".npy") else None)
        except ImageWriteError as e:
            problems.append(f"--confidence: {e}")
            continue
        same_case = folded.get(str(c.resolve()).casefold())
        if _file_key(c) in taken:
            problems.append(f"--confidence {c} is an input or an output: choose another file")
        elif same_case is not None:
            problems.append(f"--confidence {c} differs from the output {same_case} only in case (one file on a "
                            "case-insensitive file system): choose another name")
        elif os.path.lexists(c) and not args.overwrite:
            problems.append(f"{c} exists: it is not replaced unless you pass --overwrite")
        why = _sidecar_problem(c, args)
        if why:
            problems.append(why)
        out[t] = c
    if to_folder:
        why = _check_folder(base, create=True)
        if why:
            problems.append(f"--confidence {args.confidence}: {why}")
    return out


def _without_path(msg: str, path: Path) -> str:
    """An error message without its leading ``path: `` (the caller names the file once)."""
    return msg[len(str(path)) + 2:] if msg.startswith(f"{path}: ") else msg


def _rgb_flag(args) -> bool | None:
    return True if args.rgb else False if args.grey else None


def read_hints_csv(path) -> list:
    """Colour points from a CSV file: rows ``y,x,r,g,b`` (every slice of a stack) or ``z,y,x,r,g,b`` (slice
    z only), the two mixed as needed (a first line of names - no cell a number - is skipped; blank lines and
    ``#`` comments too; a UTF-8 byte-order mark, as Excel writes, is ignored). Raises _Refused naming the line
    that is wrong (line 1 too, when a cell of it is a number)."""
    import csv

    def number(c: str) -> bool:
        try:
            float(c)
        except ValueError:
            return False
        return True

    p = Path(path)
    if not p.is_file():
        raise _Refused([f"--hints {path}: no such file"])
    if p.stat().st_size > 16 * 2**20:
        raise _Refused([f"--hints {path}: {p.stat().st_size / 2**20:.0f} MB is far too large for a file of colour "
                        "points"])
    out = []
    with open(p, newline="", encoding="utf-8-sig", errors="replace") as f:
        for k, row in enumerate(csv.reader(f), 1):
            cells = [c.strip() for c in row]
            if not cells or not any(cells) or cells[0].startswith("#"):
                continue
            while cells and not cells[-1]:  # (trailing empty cells)
                cells.pop()
            try:
                *pos, r, g, b = (float(c) for c in cells)
                if len(cells) not in (5, 6) or (len(pos) == 3 and not (pos[0] >= 0 and pos[0].is_integer())):
                    raise ValueError
                if len(pos) == 3:
                    pos[0] = int(pos[0])
            except ValueError:
                if k == 1 and not out and not any(number(c) for c in cells):  # (a header)
                    continue
                raise _Refused([f"--hints {path}, line {k}: expected y,x,r,g,b or z,y,x,r,g,b numbers (z a slice "
                                f"index, 0 or more), got {','.join(cells)!r}"])
            out.append((*pos, (r, g, b)))
    if not out:
        raise _Refused([f"--hints {path}: it holds no colour point (rows y,x,r,g,b or z,y,x,r,g,b)"])
    return out


def _load_guide(args, model, sink: list) -> dict:
    """The reference (validated) or histogram, read once for every target; the colour points."""
    from .inputs import prepare_histogram, prepare_reference
    from .io import read_image

    if args.hints and not (args.reference or args.keyframe or args.histogram or args.histogram_from):
        return {}  # (colour points alone)

    if args.reference or args.keyframe:  # (each checked; several: the union of their positions, see colorize())
        loaded, problems = {}, []
        for r in dict.fromkeys(reference_files(args)):
            notes: list[str] = []
            try:
                loaded[r] = prepare_reference(read_image(r), notes)
            except (ValueError, TypeError) as e:
                problems.append(f"{r}: {e}" if r not in str(e) else str(e))
            sink.extend(f"{Path(r).name}: {w}" for w in notes)
        if problems:
            raise _Refused(problems) from None
        if args.keyframe:
            return {"references": {z: [loaded[f] for f in files] for z, files in args.keyframes.items()},
                    "blend": args.blend}
        refs = [loaded[r] for r in args.reference]
        return {"reference": refs[0] if len(refs) == 1 else refs}
    if args.histogram_from:
        from .color import histogram_from_rgb

        try:
            return {"histogram": histogram_from_rgb(prepare_reference(read_image(args.histogram_from), sink))}
        except (ValueError, TypeError) as e:
            raise _Refused([f"{args.histogram_from}: {e}" if args.histogram_from not in str(e) else str(e)]) from None
    try:
        import numpy as np

        return {"histogram": prepare_histogram(np.asarray(read_image(args.histogram)))}
    except (ValueError, TypeError) as e:
        raise _Refused([f"{args.histogram}: {e}" if args.histogram not in str(e) else str(e)]) from None


def parse_keyframes(values: list[str] | None) -> dict[int, list[str]]:
    """``["0:a.png", "40:b.png", "40:c.png"]`` -> ``{0: ["a.png"], 40: ["b.png", "c.png"]}``."""
    out: dict[int, list[str]] = {}
    for v in values or []:
        z, sep, path = v.partition(":")
        try:
            zi = int(z)
        except ValueError:
            zi = None
        if not sep or zi is None or not path:
            raise _Refused([f"--keyframe {v}: give SLICE:IMAGE, e.g. --keyframe 0:first.png --keyframe 40:later.png"])
        out.setdefault(zi, []).append(path)
    return out


def reference_files(args) -> list[str]:
    """Every reference file of the run: the -r images, then the keyframes' images."""
    return list(args.reference or []) + [f for files in getattr(args, "keyframes", {}).values() for f in files]


def run_record(record: dict, args, target) -> dict:
    """A run's provenance with the references named by their files, the target by its file, and the
    command line's settings."""
    from . import provenance

    names = dict(args.keyframes) if getattr(args, "keyframe", None) else list(args.reference or []) or None
    rec = provenance.named(record, names, target=target)
    if args.hints:
        rec["hints_from"] = str(Path(args.hints).resolve())
    if args.histogram_from or args.histogram:
        rec.setdefault("histogram", {})["from"] = str(Path(args.histogram_from or args.histogram).resolve())
    rec["settings"]["model_argument"] = args.model
    if getattr(args, "channel", None) is not None:
        rec["settings"]["channel"] = args.channel
    return rec


def _cmd_info(args) -> int:
    """Print the provenance of outputs (image metadata, the sidecar beside a .npy, OME-Zarr attributes)."""
    import json

    from .provenance import ProvenanceError, describe
    from .volume import read_provenance

    records, status = [], 0
    for out in args.outputs:
        try:
            rec = read_provenance(out)
        except (ProvenanceError, OSError, ValueError) as e:
            _say("error", f"{out}: {e}")
            status = 1
            continue
        if rec is None:
            _say("error", f"{out}: it holds no record of how it was made (not written by napari-colorize, written "
                          "with --no-provenance, or its metadata was stripped)")
            status = 1
            continue
        records.append((out, rec))
    if args.json:
        print(json.dumps(records[0][1] if len(args.outputs) == 1 and records else
                         {str(o): r for o, r in records}, indent=1))
    else:
        for k, (out, rec) in enumerate(records):
            print(("\n" if k else "") + f"{out}:\n" + "\n".join("  " + line for line in describe(rec).splitlines()))
    return status


def _is_volume_run(args) -> bool:
    """A .zarr input or a .zarr output: the volume path (OME-Zarr out, on dask)."""
    from .volume import is_zarr_path

    return any(is_zarr_path(t) for t in args.targets) or args.output.rstrip("/" + os.sep).lower().endswith(".zarr")


def _cmd_colorize_volume(args) -> int:
    """One volume to OME-Zarr (napari_colorize.volume), locally or on a dask cluster (--scheduler)."""
    import warnings

    from .volume import MissingExtraError, ResumeError, VolumeNote, colorize_volume

    problems = []
    if len(args.targets) != 1:
        problems.append(f"a .zarr volume is colourised on its own: give one target, not {len(args.targets)}")
    out = Path(args.output.rstrip("/" + os.sep))
    if out.suffix.lower() != ".zarr":
        problems.append(f"{args.targets[0]} is a zarr volume: it is written as OME-Zarr; give -o OUT.zarr")
    if args.dtype not in (None, "uint8", "uint16"):
        problems.append(f"--dtype {args.dtype}: OME-Zarr output is uint8 (default) or uint16")
    if args.confidence:
        problems.append("--confidence is written for images and stacks, not yet for volumes (OME-Zarr): colourise "
                        "the slices you want to inspect as images")
    if args.rgb or args.channel_axis is not None or args.suffix:
        problems.append("--rgb, --channel-axis and --suffix are not for volumes: a volume is greyscale, written "
                        "as one OME-Zarr image")
    if args.pyramid < 0:
        problems.append("--pyramid must be 0 or more")
    if problems:
        raise _Refused(problems)
    histogram_guide = bool(args.histogram or args.histogram_from)
    hints_only = bool(args.hints) and not (args.reference or args.keyframe or histogram_guide)
    guide_notes: list[str] = []
    name = args.model or best_default_model("histogram" if histogram_guide else "hints" if hints_only else "exemplar")
    guide = None
    if args.reference:
        guide = {"reference": args.reference[0] if len(args.reference) == 1 else list(args.reference)}
    elif args.keyframe:
        guide = {"references": dict(args.keyframes), "blend": args.blend}
    if guide is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            guide = _load_guide(args, None, guide_notes)
    protect = [p for p in (args.histogram_from, args.histogram, args.hints) if p]
    notes: list = []
    try:
        with warnings.catch_warnings(record=True) as notes:
            warnings.simplefilter("ignore")
            warnings.simplefilter("always", VolumeNote)  # (said: a half-created store made again)
            dest = colorize_volume(args.targets[0], out, name, **guide, scheduler=args.scheduler, size=args.size,
                                   dtype=args.dtype or "uint8", pyramid=args.pyramid, temporal=args.temporal,
                                   normalize=args.normalize, progress=None if args.quiet else "bar",
                                   overwrite=args.overwrite, device=args.device, channel=args.channel,
                                   protect=protect, rgb=False if args.grey else None, hints=args.hint_list,
                                   hint_spread=args.hint_spread)
    except (MissingExtraError, ResumeError) as e:
        raise _Refused([str(e)]) from None
    except KeyboardInterrupt:
        print(f"\ninterrupted: {out} is unfinished; run the same command again to compute only what is missing",
              file=sys.stderr)
        return 130
    finally:
        for w in dict.fromkeys(str(n.message) for n in notes if issubclass(n.category, VolumeNote)):
            _say("note", w)
    if not args.quiet:
        print(f"wrote {dest} ({name}, OME-Zarr)")
    return 0


def _cmd_colorize(args) -> int:
    import warnings

    args.keyframes = parse_keyframes(args.keyframe)  # (checked before anything is read)
    if not (args.reference or args.keyframe or args.histogram or args.histogram_from or args.hints):
        raise _Refused(["give a guide: --reference IMAGE (or several -r, or --keyframe Z:IMAGE), --histogram-from "
                        "IMAGE / --histogram FILE (histogram models), or --hints POINTS.csv (colour points)"])
    args.hint_list = read_hints_csv(args.hints) if args.hints else None
    if _is_volume_run(args):
        return _cmd_colorize_volume(args)
    volume_only = [f for f, v in (("--scheduler", args.scheduler), ("--pyramid", args.pyramid)) if v]
    if volume_only:
        raise _Refused([f"{', '.join(volume_only)}: only for volumes (a .zarr target or -o OUT.zarr); images and "
                        "stacks in other formats run in this process"])
    jobs, failed, folder = _plan(args)
    for t, why in failed.items():
        _say("error", f"{t}: {why}")
    histogram_guide = bool(args.histogram or args.histogram_from)
    hints_only = bool(args.hints) and not (args.reference or args.keyframe or histogram_guide)
    from . import iter_colorize, load_model

    try:
        model = load_model(args.model or best_default_model("histogram" if histogram_guide else
                                                            "hints" if hints_only else "exemplar"),
                           device=args.device)
    except (ValueError, TypeError, OSError, RuntimeError) as e:
        raise _Refused([str(e)]) from None
    if args.confidence and not model.gives_confidence:
        raise _Refused([f"--confidence: {model.name!r} has no match confidence (the exemplar networks and the "
                        "warps have one; global methods and histogram models do not)"])
    if model.kind == "hints" and not hints_only:
        raise _Refused([f"{model.name!r} colours from colour points alone: give --hints without a reference, or "
                        "another model with the reference and the hints"])
    if hints_only and model.kind != "hints":
        raise _Refused([f"{model.name!r} needs a guide besides --hints: give --reference (or -m levin for colour "
                        "points alone)"])
    if histogram_guide and model.kind != "histogram":
        raise _Refused([f"{model.name!r} is an exemplar model: give it --reference, or use a histogram model "
                        "(-m histogram) with --histogram/--histogram-from"])
    guide_notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guide = _load_guide(args, model, guide_notes)
    prefix = "" if args.reference or args.keyframe or hints_only else \
        f"{Path(args.histogram_from or args.histogram).name}: "  # (references: named)
    for w in dict.fromkeys(guide_notes):
        _say("warning", prefix + w)
    if not jobs:
        return _summary([], failed, args, len(failed))
    for d in ([folder] if folder is not None else []) + sorted({c.parent for c in args.confidence_outputs.values()}):
        d.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    from . import provenance
    from .upsample import confidence_map
    from .io import PLAIN_SUFFIXES, StackWriter, read_image

    total = len(jobs) + len(failed)  # (counted now: a job that fails below joins `failed`)
    many = total > 1
    bar = tqdm(total=len(jobs), desc="colourising", unit="image", disable=args.quiet or not many)
    written = []
    for t, dest, _, told in jobs:
        writer = cwriter = record = None
        placed = []  # (writers whose file is in place, their record not yet beside it)
        cdest = args.confidence_outputs.get(t)
        sink: list[str] = []
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                slices = iter_colorize(model, read_image(t, channel=args.channel), size=args.size,
                                       rgb=told,
                                       channel_axis=args.channel_axis, normalize=args.normalize,
                                       temporal=args.temporal, return_attention=False, sink=sink,
                                       hints=args.hint_list, hint_spread=args.hint_spread, **guide)
                sbar = text = None
                for idx, rgb, pred, info in slices:
                    if writer is None:
                        if not args.no_provenance:
                            record = run_record(info["provenance"], args, t)
                            text = provenance.dumps(record)
                        writer = StackWriter(dest, tuple(info["stack_shape"]) + rgb.shape, args.dtype, text=text)
                        if cdest is not None:
                            cwriter = StackWriter(cdest, tuple(info["stack_shape"]) + rgb.shape[:2],
                                                  None if cdest.suffix.lower() in PLAIN_SUFFIXES else "float32",
                                                  grey=True, text=text)
                        if info["n_slices"] > 1 and not args.quiet and not many:
                            sbar = tqdm(total=info["n_slices"], desc=t.name, unit="slice")
                    writer[idx] = rgb
                    if cwriter is not None:
                        cwriter[idx] = confidence_map(pred, rgb.shape[:2])
                    if sbar is not None:
                        sbar.update(1)
                if sbar is not None:
                    sbar.close()
                if cwriter is not None:  # (the confidence first: a result is never reported failed once written)
                    cwriter.close()
                    placed.append(cwriter)
                writer.close()
                placed.append(writer)
                while placed:
                    _record_beside(placed.pop(0), record)
        except KeyboardInterrupt:
            _abandon((writer, cwriter), placed, record)
            bar.close()
            failed[t] = "interrupted"
            print(file=sys.stderr)
            _summary(written, failed, args, total)
            return 130
        except Exception as e:  # one file's failure does not stop the others
            _abandon((writer, cwriter), placed, record)
            user = isinstance(e, (ValueError, TypeError, MemoryError, OSError)) or _out_of_memory(e)
            why = _without_path(_error_text(e), t) if user else \
                f"internal error ({type(e).__name__}: {e}); please report it"
            failed[t] = why
            _say("error", f"{t}: {why}")
            bar.update(1)
            continue
        for w in dict.fromkeys(sink):
            if w not in guide_notes:
                _say("warning", f"{t.name}: {w}")
        written.append((t, dest))
        if not many and not args.quiet:
            print(f"wrote {dest} ({model.name}, working size {info['working_shape'][0]}x{info['working_shape'][1]})")
        bar.update(1)
    bar.close()
    return _summary(written, failed, args, total)


def _abandon(writers, placed: list, record: dict | None) -> None:
    """A target's run stopped (failed or interrupted): the partial files of ``writers`` (None: not made) are
    dropped; the files already in place (``placed``) keep the record of the run that wrote them, never an
    earlier one (:func:`_record_beside`)."""
    for w in writers:
        if w is not None:
            w.abort()
    for w in placed:
        _record_beside(w, record)


def _record_beside(writer, record: dict | None) -> None:
    """After ``writer`` (a closed ``io.StackWriter``) put its file in place: a format with no place for the
    run's record gets a sidecar; an earlier run's record beside a replaced file goes (it would describe this
    one). A record that cannot be written is said, not a failure (the file is in place)."""
    from . import provenance
    from .io import can_embed

    dest = writer.path
    beside = not can_embed(dest, "")
    try:
        if record is not None and writer.text is None:
            provenance.write_sidecar(dest, record)
        elif record is None and beside:
            provenance.remove_sidecar(dest)
    except Exception as e:  # (no stale record beside it either)
        if beside:
            provenance.remove_sidecar(dest)
        _say("warning", f"{dest}: written, but its record could not be written beside it ({e})")


def _summary(written: list, failed: dict, args, total: int) -> int:
    """The last line: exactly what was written and what failed. Exit status 0 / 1 / 2."""
    if total == 1 and failed:
        print("nothing was written", file=sys.stderr)
    elif total > 1:
        line = f"wrote {len(written)} of {total}"
        if written and total > 1:
            folders = {str(d.parent) for _, d in written}
            line += f" to {folders.pop()}/" if len(folders) == 1 else ""
        if failed:
            line += "; failed: " + ", ".join(f"{t.name} ({cli_words(why)})" for t, why in failed.items())
        if not args.quiet or failed:
            print(line, file=sys.stderr if failed else sys.stdout)
    if not failed:
        return 0
    return 1 if written else 2


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
    viewer = not args.no_viewer and _napari_available()
    here = viewer and (_has_display() or (args.screenshot and not shutil.which("xvfb-run")))
    xvfb = viewer and not here and shutil.which("xvfb-run")
    shot = args.screenshot or (Path(args.output).with_name(Path(args.output).stem + "-viewer.png") if xvfb else None)
    writes = ([args.output] if not here or args.screenshot else []) + ([shot] if shot else [])
    existing = [f"{w} exists: it is not replaced unless you pass --overwrite" for w in writes
                if os.path.lexists(w) and not args.overwrite]  # (as colorize: checked before any work)
    from .io import ImageWriteError, check_output_format

    for w in writes:
        try:
            check_output_format(w, stack=False)
        except ImageWriteError as e:
            existing.append(str(e))
    if existing:
        raise _Refused(existing)
    if viewer:
        if here:
            open_demo(name, screenshot=args.screenshot, result=args.output if args.screenshot else None)
            if args.screenshot:
                print(f"wrote {Path(args.output).resolve()}")
            return 0
        if xvfb:
            print("no display: rendering the viewer under a virtual X server (xvfb-run)")
            cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, "-m", "napari_colorize.cli",
                   "demo", "--model", name, "--output", str(args.output), "--screenshot", str(shot)]
            return subprocess.call(cmd + (["--overwrite"] if args.overwrite else []))
        print("no display and no xvfb-run: writing the result without the viewer")
    return _demo_png(name, args)


def open_demo(model: str, screenshot: str | Path | None = None, result: str | Path | None = None) -> None:
    """The main job in napari, in the user's order: napari first, then our sample (File > Open Sample),
    then the exemplar widget (Plugins > napari-colorize, through napari's plugin system), driven
    through its public methods, and run. With ``screenshot`` the viewer renders, saves the screenshot
    (and the result as PNG) and closes instead of staying open."""
    import napari  # (here: the command line does not need napari, nor Qt, for anything else)
    from qtpy.QtWidgets import QApplication

    from .io import write_image

    viewer = napari.Viewer(title="napari-colorize demo")
    viewer.window.resize(1500, 900)
    viewer.open_sample("napari-colorize", "motorcycle_pair")
    before = set(map(id, viewer.layers))
    _, w = viewer.window.add_plugin_dock_widget("napari-colorize", EXEMPLAR_WIDGET)
    w.set_model(model)
    w.run()
    if screenshot is None:
        napari.run()
        return
    while w.worker is not None:
        QApplication.processEvents()
    layer = next(l for l in viewer.layers if id(l) not in before and l.rgb)  # the result
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(screenshot), canvas_only=False)
    if result is not None:
        write_image(result, layer.data)
    print(f"wrote {Path(screenshot).resolve()}")
    viewer.close()


def _demo_png(name: str, args) -> int:
    from . import colorize, load_model
    from ._sample_data import sample_pair
    from .metrics import his, ssim

    grey, ref, truth = sample_pair()
    model = load_model(name, device=args.device)
    t0 = time.perf_counter()
    res = colorize(model, grey, reference=ref)
    dt = time.perf_counter() - t0
    from .io import write_image

    out = write_image(args.output, res.rgb)
    print(f"model: {name}  ({model.kind}; {dt:.2f} s colourising)")
    print(f"target: scikit-image motorcycle_left (grey {grey.shape[1]}x{grey.shape[0]}), "
          f"reference: motorcycle_right")
    print(f"HIS vs reference {his(res.rgb, ref):.3f}   SSIM vs ground truth {ssim(res.rgb, truth):.3f}")
    print(f"wrote {out.resolve()}")
    return 0


def _cmd_bench(args) -> int:
    from .bench import bench_forward
    from .models.registry import model_info

    bad = [f"{f} must be at least 1" for f, v in (("--repeats", args.repeats), ("--threads", args.threads)) if v < 1]
    bad += [f"--sizes {s}: a size is at least 16 pixels" for s in args.sizes if s < 16]
    if bad:
        raise _Refused(bad)
    try:
        baseline, named = model_info(args.model).architecture == "baseline", True
    except ValueError:  # a checkpoint file (loading it says if it is not one)
        baseline, named = False, False
    weights = "a baseline: no network, its predict step" if baseline else "the checkpoint's weights" if not named \
        else ("the shipped weights" if args.pretrained else "random weights, the same architecture (--pretrained: the "
                                                         "shipped ones; the time does not depend on them)")
    print(f"timing {args.model} ({weights}) on {args.threads} CPU thread(s), {args.repeats} runs per size",
          file=sys.stderr)
    print(f"{'model':20s} {'size':>6s} {'median ms':>10s} {'min ms':>8s}", flush=True)

    def row(r):
        print(f"{r['model']:20s} {r['size']:6d} {r['median_ms']:10.1f} {r['min_ms']:8.1f}", flush=True)

    def started(size, k, n):
        print(f"size {size} ({k} of {n}) ...", file=sys.stderr, flush=True)

    bench_forward(args.model, sizes=args.sizes, repeats=args.repeats, threads=args.threads,
                  pretrained=args.pretrained, progress=row, started=started)
    return 0


DESCRIPTION = """\
Colourise greyscale images, stacks and volumes with neural networks (and classic baselines).

'napari-colorize COMMAND --help' tells more about a command. colorize checks every output path,
the model and the guide before computing anything; a target that fails does not stop the
others. Exit status: 0 everything written, 1 some files failed, 2 nothing written (an error)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="napari-colorize", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")

    sub.add_parser("models", help="list the models, their kind and whether their weights are installed").set_defaults(func=_cmd_models)

    c = sub.add_parser(
        "colorize", help="colourise images or stacks (.png, .jpg, .tif, .npy), or a volume (.zarr, to "
                         "OME-Zarr)",
        description="Colourise greyscale images or stacks. Every output path is checked before any work; "
                    "existing files are kept unless --overwrite; a failed target does not stop the others. "
                    "Exit status: 0 all written, 1 some failed, 2 nothing written.")
    c.add_argument("targets", nargs="+", help="greyscale image(s) or stacks (.png, .jpg, .tif, .npy), or one volume "
                                              "(.zarr: a zarr array or OME-Zarr image; written as OME-Zarr)")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--reference", "-r", action="append", metavar="IMAGE",
                   help="colour reference image; repeat for several (-r a.png -r b.png): each pixel may take "
                        "colour from any of them")
    g.add_argument("--keyframe", action="append", metavar="Z:IMAGE",
                   help="a stack's reference from slice Z on (along its last stack axis); repeat: --keyframe "
                        "0:a.png --keyframe 40:b.png (the same Z twice: two references there); slices between "
                        "keyframes mix the two (--blend)")
    g.add_argument("--histogram-from", help="use the ab histogram of this colour image (a histogram model)")
    g.add_argument("--histogram", help="a (21, 21) ab histogram saved with numpy.save (a histogram model)")
    c.add_argument("--hints", metavar="CSV", default=None,
                   help="colour points: a CSV file of y,x,r,g,b rows (target pixels; colour 0-1 or 0-255; a header "
                        "line is allowed): each sets the colour at its pixel and spreads over its region; with a "
                        "reference they win where they are; alone (no -r) they are Levin's scribble colourisation "
                        "(-m levin). On a stack or volume a y,x,r,g,b row colours every slice, a z,y,x,r,g,b row "
                        "slice z only (its index along the stack axes flattened: t*Z+z for T,Z,Y,X); rows of both "
                        "kinds may be mixed"),
    c.add_argument("--hint-spread", type=_positive_float, default=None, metavar="PX",
                   help="with --hints and a reference: how far a point's colour reaches, in working pixels "
                        "(default 64)")
    c.add_argument("--blend", choices=["linear", "nearest"], default="linear",
                   help="with --keyframe: mix the neighbouring keyframes' colours by distance (linear, default) or "
                        "take the nearer keyframe's (nearest)")
    c.add_argument("--model", "-m", default=None,
                   help="model name or checkpoint (default: the best shipped one for the guide)")
    c.add_argument("--output", "-o", required=True,
                   help="output file (one target), or folder (many targets, or a path ending in / or without a "
                        "suffix; created when missing)")
    c.add_argument("--suffix", default=None,
                   help="output type in a folder: .png, .jpg, .tif or .npy (default: .png for 2-D images, .tif for "
                        "stacks)")
    c.add_argument("--dtype", choices=("uint8", "uint16", "float32"), default=None,
                   help="output values for .tif/.npy (default: uint16 for .tif, float32 for .npy; .png/.jpg are "
                        "always uint8)")
    c.add_argument("--confidence", metavar="FILE", default=None,
                   help="also write each target's match confidence (0-1: how well each pixel found its match in "
                        "the reference) to FILE (.png 8-bit, .tif/.npy float32); with several targets a folder "
                        "(STEM_confidence.png, .tif for stacks); exemplar networks and the warps")
    c.add_argument("--overwrite", action="store_true", help="replace existing output files (never an input)")
    lay = c.add_mutually_exclusive_group()
    lay.add_argument("--rgb", action="store_true", help="the last axis of the target is colour (RGB/RGBA)")
    lay.add_argument("--grey", action="store_true",
                     help="the target is greyscale: a 2-D image or a stack (Z, Y, X) / (T, Z, Y, X)")
    lay.add_argument("--channel-axis", type=int, default=None,
                     help="this axis of the target holds colour channels (0 for a (3, H, W) array)")
    c.add_argument("--normalize", choices=("auto", "percentile", "minmax", "none"), default="auto",
                   help="how intensities map to grey (default auto: uint8 as is, others stretched between the "
                        "0.1 and 99.9 percentiles)")
    c.add_argument("--size", type=_positive_int, default=None, help="working long side in pixels")
    c.add_argument("--temporal", type=int, default=None, metavar="K",
                   help="stacks: smooth each slice's colour with K neighbours on either side, motion-compensated "
                        "(less flicker; default 3 for stacks, 0 to colour each slice on its own)")
    c.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    c.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="volumes (.zarr in or out): run on this dask cluster (tcp://HOST:PORT of a `dask scheduler`); "
                        "default: local threads")
    c.add_argument("--pyramid", type=int, default=0, metavar="N",
                   help="volumes: also write N lower resolution levels (each halves y and x)")
    c.add_argument("--channel", default=None, metavar="N|NAME",
                   help="the channel to colourise of a multi-channel OME-Zarr image (index or name) or TIFF "
                        "(index; axes C, as ImageJ writes)")
    c.add_argument("--no-provenance", action="store_true",
                   help="do not record how the output was made (model, weights' hash, references' paths and "
                        "pixel hashes, settings; kept in the PNG/TIFF/JPEG metadata, OUT.provenance.json beside "
                        ".npy, the OME-Zarr attributes; read it with `napari-colorize info OUT`)")
    c.add_argument("--quiet", "-q", action="store_true")
    c.set_defaults(func=_cmd_colorize)

    i = sub.add_parser("info", help="how an output was made: its provenance (model, weights, references, "
                                    "keyframes, settings, version)")
    i.add_argument("outputs", nargs="+", metavar="OUT", help="an output of napari-colorize (.png, .jpg, .tif, .npy "
                                                             "with its sidecar, or .zarr)")
    i.add_argument("--json", action="store_true", help="print the records as JSON")
    i.set_defaults(func=_cmd_info)

    d = sub.add_parser("demo", help="colourise the bundled sample pair (in napari when it is installed)")
    d.add_argument("--model", "-m", default=None)
    d.add_argument("--output", "-o", default="napari-colorize-demo.png", help="the result as PNG")
    d.add_argument("--device", default="auto")
    d.add_argument("--no-viewer", action="store_true", help="do not open napari; just write the result")
    d.add_argument("--screenshot", default=None, help="render the viewer to this PNG and exit")
    d.add_argument("--overwrite", action="store_true", help="replace an existing --output or --screenshot file")
    d.set_defaults(func=_cmd_demo)

    b = sub.add_parser("bench", help="time a model's forward pass on this machine",
                       description="Time a model's forward pass on the CPU (the median and the fastest of "
                                   "--repeats runs, after 3 warm-up runs) for one target/reference pair (or "
                                   "target/histogram) per size. Networks are timed with random weights unless "
                                   "--pretrained (the time does not depend on the weights); baselines time their "
                                   "predict step.")
    b.add_argument("--model", "-m", default="exemplar", help="model name (default exemplar; see "
                                                              "'napari-colorize models')")
    b.add_argument("--sizes", type=int, nargs="+", default=[224], metavar="PX",
                   help="square working sizes in pixels (default 224)")
    b.add_argument("--repeats", type=int, default=20, help="timed runs per size (default 20)")
    b.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    b.add_argument("--pretrained", action="store_true",
                   help="load the shipped weights instead of random ones (they must be installed)")
    b.set_defaults(func=_cmd_bench)
    s = sub.add_parser("suggest", help="rank candidate reference images for a grey target",
                       description="Rank candidate colour references for a grey target: paper A's correspondence "
                                   "recommendation (global feature ranking, then local patch similarity). Candidate "
                                   "features are cached on disk, so a folder is ranked again quickly.")
    s.add_argument("target", help="the grey target image")
    s.add_argument("candidates", nargs="+", help="a folder of images, or image files")
    s.add_argument("--top", type=int, default=5, help="how many to list (default 5)")
    s.add_argument("--set", type=int, default=0, metavar="K", dest="together",
                   help="propose K complementary references to use together (colorize -r A -r B ...): each one "
                        "chosen for the parts of the target the ones before it match worst")
    s.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    s.add_argument("--cache-dir", default=None, help="feature cache folder (default: $NAPARI_COLORIZE_CACHE or "
                                                     "~/.cache/napari-colorize)")
    s.set_defaults(func=_cmd_suggest)
    for cmd in (c, d, s):  # the commands that run networks
        cmd.add_argument("--threads", type=int, default=None, metavar="N",
                         help="torch threads (default: $NAPARI_COLORIZE_THREADS, $OMP_NUM_THREADS, else the idle "
                              "cores; on a busy machine more threads than idle cores are slower)")
    return p


def _cmd_suggest(args) -> int:
    from .io import read_image
    from .suggest import FeatureCache, candidate_files, suggest_references

    if args.top < 1:
        raise ValueError("--top must be at least 1")
    if args.together < 0 or args.together == 1:
        raise ValueError("--set must be 2 or more (one reference is the ranking's first)")
    files: list[Path] = []
    for c in args.candidates:
        p = Path(c)
        if p.is_dir():
            files += candidate_files(p)
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"{c}: no such file or folder")
    target_path = Path(args.target)
    files = [f for f in files if not _same_file(f, target_path)]
    if not files:
        raise ValueError("no candidate images found")
    target = read_image(target_path)
    cache = False if args.no_cache else (FeatureCache(Path(args.cache_dir)) if args.cache_dir else True)
    errors: list[str] = []
    tty = sys.stderr.isatty()

    def progress(done, total):
        if tty:
            print(f"\rfeatures {done}/{total}", end="" if done < total else "\n", file=sys.stderr)

    ranked = suggest_references(target, files, top=args.top, cache=cache, progress=progress, errors=errors,
                                together=args.together)
    for line in errors:
        _say("skipped", line)
    if args.together:
        print(f"{'pick':>4}  {'set score':>9}  reference  (use them together: colorize -r A -r B ...)")
        for i, sgt in enumerate(ranked, 1):
            print(f"{i:>4}  {sgt.score:9.3f}  {sgt.name}")
        if len(ranked) < args.together:
            print(f"(no other candidate adds to these {len(ranked)})")
        return 1 if errors else 0
    print(f"{'rank':>4}  {'score':>6}  reference")
    for i, sgt in enumerate(ranked, 1):
        print(f"{i:>4}  {sgt.score:6.3f}  {sgt.name}")
    return 1 if errors else 0


_TERMINATED = [False]


def _on_sigterm(signum, frame) -> None:
    """SIGTERM (``kill``, a job scheduler's time limit) ends the run as Ctrl-C does: the partial file
    is removed, an unfinished volume stays resumable."""
    _TERMINATED[0] = True
    raise KeyboardInterrupt


def _positive(convert, what: str):
    """An argparse type for an argument that counts pixels (``convert``: int or float), checked when the command
    line is read, before any work: positive and finite."""

    def parse(text: str):
        try:
            v = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, not {text!r}") from None
        if not 0 < v < float("inf"):
            raise argparse.ArgumentTypeError(f"must be a positive, finite number of pixels, not {text}")
        return v

    return parse


_positive_int = _positive(int, "a whole number of pixels")
_positive_float = _positive(float, "a number of pixels")


def _negative_keyframes(argv: list[str]) -> list[str]:
    """``--keyframe -1:ref.png`` (a keyframe counted from the end) as ``--keyframe=-1:ref.png``: argparse takes
    a value that starts with '-' for an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--keyframe" and i + 1 < len(argv) and re.match(r"-\d+:", argv[i + 1]):
            out.append(f"--keyframe={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading

    args = build_parser().parse_args(_negative_keyframes(list(sys.argv[1:] if argv is None else argv)))
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    _TERMINATED[0] = False
    try:
        code = _main(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 143 if _TERMINATED[0] and code == 130 else code  # (128 + SIGTERM, as the shell reports it)


def _main(args) -> int:
    try:
        if args.command in ("colorize", "demo", "suggest"):
            from .allocator import keep_freed_memory
            from .threads import set_threads

            import warnings

            with warnings.catch_warnings(record=True) as notes:  # (a number of threads capped: said as a warning)
                warnings.simplefilter("always")
                set_threads(args.threads)
            for n in notes:
                _say("warning", str(n.message))
            keep_freed_memory()
        return args.func(args)
    except _Refused as e:
        for line in e.lines:
            _say("error", line)
        print("nothing was written", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, TypeError, RuntimeError, MemoryError) as e:
        _say("error", _error_text(e))
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ImportError as e:  # an optional dependency (the message names the extra to install)
        _say("error", str(e))
        return 2
    except OSError as e:  # a folder that cannot be read, a device error...: what and where, not a traceback
        where = f"{e.filename}: " if e.filename else ""
        what = "permission denied (check the file's or folder's permissions)" if isinstance(e, PermissionError) \
            else (e.strerror or str(e))
        _say("error", f"{where}{what}")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
