"""Shared training machinery: distributed setup, exact resume, logs and pictures.

* ``torchrun --nproc_per_node N -m training.train_exemplar ...`` runs data-parallel (DDP): gloo on
  CPUs, NCCL on GPUs. Each rank draws its own samples from ``(seed, step, rank)``.
* Checkpoints are written atomically (temporary file + rename) with the model, optimisers, step
  and every random generator state; ``--resume`` (the default) continues from ``OUT/last.pt``
  exactly where it stopped. They hold only tensors and plain Python values and are read with
  ``torch.load(weights_only=True)``.
* ``OUT/log.csv`` gets one row per logged step; ``OUT/curves.png`` and ``OUT/samples_XXXXXX.png``
  are drawn at every sample interval.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


def setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every global random generator's state, as plain values (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(), "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
            "torch": torch.get_rng_state()}


def set_rng_state(s: dict) -> None:
    random.setstate(_tuplify(s["python"]))
    kind, keys, pos, has_gauss, gauss = s["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(s["torch"])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


def atomic_save(obj: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:  # (a full disk, interrupted): no temporary file left; the previous one is kept
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def disk_full_exits(out: Path):
    """A full disk during a training run ends it with a message (SystemExit), not a traceback: what
    was saved last (``out/last.pt``) is kept, and the same command resumes from it."""
    from napari_colorize.io import DiskFullError, disk_full_message, is_disk_full

    try:
        yield
    except DiskFullError as e:  # (the export)
        raise SystemExit(f"error: {e}") from None
    except (OSError, RuntimeError) as e:  # (torch.save reports a failed write as a RuntimeError)
        if not (is_disk_full(e) or "No space left on device" in str(e) or "Disk quota exceeded" in str(e)):
            raise
        raise SystemExit(f"error: {disk_full_message(Path(out) / 'last.pt')}; {Path(out) / 'last.pt'} keeps the "
                         "last checkpoint: run the same command again to resume from it") from None


def load_resume(path: Path) -> dict | None:
    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


class CSVLog:
    def __init__(self, path: Path, fields: list[str], truncate_after: int | None = None) -> None:
        self.path, self.fields = Path(path), fields
        rows = []
        if self.path.exists():
            with open(self.path, newline="") as fh:
                reader = csv.DictReader(fh)
                rows = [r for r in reader if truncate_after is None or int(r["step"]) <= truncate_after]
                # a log of an earlier version of the same script (fewer columns: a loss added since) is
                # rewritten with today's columns, the new ones empty in its rows; other columns: another run
                if reader.fieldnames and not set(reader.fieldnames) <= set(fields):
                    raise ValueError(f"{self.path} was written with other columns ({', '.join(reader.fieldnames)}): "
                                     "another run's log? Use another --out folder; the file is left as it is.")
        # drop rows past the resumed step; written aside and swapped in, so a failure never loses the log
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fields)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, self.path)

    def write(self, row: dict) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, self.fields).writerow({k: (f"{v:.6g}" if isinstance(v, float) else v)
                                                      for k, v in row.items()})

    def read(self) -> list[dict]:
        with open(self.path, newline="") as fh:
            return list(csv.DictReader(fh))


def plot_curves(log: CSVLog, keys: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = log.read()
    if not rows:
        return
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8))
    for ax, k in zip(np.atleast_1d(axes), keys):
        pts = [(int(r["step"]), float(r[k])) for r in rows if r.get(k) not in (None, "")]
        if pts:  # validation columns are only filled at sample intervals
            xs, ys = zip(*pts)
            ax.plot(xs, ys, lw=0.8, marker="." if len(pts) < 50 else None)
        ax.set_title(k)
        ax.set_xlabel("step")
        if k != "lr" and any(y > 0 for _, y in pts):  # an ablated loss is 0 throughout: keep it linear
            ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def save_grid(rows: list[list[np.ndarray]], out: Path, labels: list[str]) -> None:
    """A grid of RGB images (rows x columns) with column labels, as PNG."""
    from PIL import Image, ImageDraw

    h, w = rows[0][0].shape[:2]
    grid = Image.new("RGB", (w * len(rows[0]), 16 + h * len(rows)), "white")
    d = ImageDraw.Draw(grid)
    for c, lab in enumerate(labels):
        d.text((c * w + 3, 2), lab, fill="black")
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, -1)
            arr = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8) if img.dtype != np.uint8 else img
            grid.paste(Image.fromarray(arr), (c * w, 16 + r * h))
    grid.save(out)


def to_lab_batch(rgbs: list[np.ndarray], device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 RGB images -> (normalised L (B,1,H,W), normalised ab (B,2,H,W), RGB in [0,1])."""
    from napari_colorize.color import normalize_lab, rgb_to_lab

    x = torch.from_numpy(np.stack(rgbs)).permute(0, 3, 1, 2).float().div(255).to(device)
    lab = normalize_lab(rgb_to_lab(x))
    return lab[:, :1], lab[:, 1:], x


def lr_at(step: int, args) -> float:
    """Constant (the papers), or linear warm-up then cosine decay to 0 over ``args.steps`` (our CPU runs)."""
    if not args.cosine:
        return args.lr
    warm = min(200, args.steps // 20)
    if step < warm:
        return args.lr * (step + 1) / warm
    return args.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, args.steps - warm)))


#: checkpoints written before train_loop kept each optimiser and extra module under its own key
_LEGACY_OPTIMIZERS = {"opt_g": "g", "opt_d": "d", "opt": "main"}
_LEGACY_MODULES = {"disc": "disc"}


def train_loop(args, model, optimizers: dict, step, validate, *, rank: int, world: int, modules: dict | None = None,
               log_fields: list[str], curves: list[str], desc: str, architecture: str, training: dict,
               init=None, migrate=None) -> int:
    """The loop every training script shares; the script keeps only its step.

    Resume (``out/last.pt``: the model's trainable weights, every module and optimiser, the random
    state; a run continues exactly where it stopped), or else ``init()`` (a warm start); DDP when
    ``world > 1`` (the model and ``modules`` wrapped); the CSV log (truncated to the resumed step),
    curves and validation samples every ``--sample-every`` steps, checkpoints every ``--ckpt-every``,
    ``--stop-after``, and the export at the end (:func:`finish_run`).

    ``step(step, nets) -> row``: one optimisation step (``nets``: ``{"model": ..., **modules}``, wrapped
    for DDP), returning the log row's values (its ``"total"`` shows on the progress bar). ``validate(png)
    -> dict``: values for the row, on rank 0, with a picture written to ``png``. ``migrate``: maps a
    resumed model state dict of an earlier layout to today's. Returns the step reached.
    """
    modules = dict(modules or {})
    out = args.out
    resume = None if args.no_resume else load_resume(out / "last.pt")
    start = 0
    if resume is not None:
        sd = resume["model"]
        if migrate is not None and migrate(sd) is not sd:
            # the model's parameters were reordered since (a module of their own): the optimiser's
            # state, stored by position, would land on the wrong tensors
            raise SystemExit(f"{out / 'last.pt'} was written by an earlier layout of this network: it cannot be "
                             "resumed exactly. Start a new run (another --out) with --init-from its exported "
                             "weights (--export-partial exports a stopped run)")
        model.load_state_dict(sd, strict=False)
        opt_states = resume.get("optimizers") or {new: resume.get(old) for old, new in _LEGACY_OPTIMIZERS.items()}
        mod_states = resume.get("modules") or {new: resume.get(old) for old, new in _LEGACY_MODULES.items()}
        for name, opt in optimizers.items():
            if opt is not None:
                opt.load_state_dict(opt_states[name])
        for name, m in modules.items():
            if m is not None:
                m.load_state_dict(mod_states[name])
        set_rng_state(resume["rng"])
        start = int(resume["step"])
    elif init is not None:
        init()
    nets = {"model": model, **modules}
    if world > 1:
        nets = {k: (nn.parallel.DistributedDataParallel(m) if m is not None else None) for k, m in nets.items()}
    with disk_full_exits(out):  # (a full disk: a message, the last checkpoint kept)
        is_main = rank == 0
        log = None
        if is_main:
            out.mkdir(parents=True, exist_ok=True)
            log = CSVLog(out / "log.csv", log_fields, truncate_after=start)
            (out / "args.json").write_text(json.dumps({k: str(v) for k, v in vars(args).items()}, indent=1))

        from tqdm import tqdm

        end = args.steps if args.stop_after is None else min(args.steps, start + args.stop_after)
        bar = tqdm(range(start, end), initial=start, total=args.steps, disable=args.quiet or not is_main, desc=desc)
        model.train()
        t_last = time.perf_counter()
        for k in bar:
            row = step(k, nets)
            done = k + 1
            if is_main and (done % args.log_every == 0 or done == end):
                now = time.perf_counter()
                row = {"step": done, **row, "sec_per_step": (now - t_last) / args.log_every}
                t_last = now
                sample = done % args.sample_every == 0 or done == end
                if sample:
                    row.update(validate(out / f"samples_{done:06d}.png"))
                log.write(row)
                bar.set_postfix(loss=f"{row.get('total', float('nan')):.4f}")
                if sample:
                    plot_curves(log, curves, out / "curves.png")
            if is_main and (done % args.ckpt_every == 0 or done == end):
                atomic_save({"step": done, "model": model.trainable_state_dict(),
                             "optimizers": {n: (o.state_dict() if o is not None else None)
                                            for n, o in optimizers.items()},
                             "modules": {n: (m.state_dict() if m is not None else None) for n, m in modules.items()},
                             "rng": rng_state(), "config": model.config.to_dict()}, out / "last.pt")
        finish_run(model, args, rank, world, architecture, training, end)
    return end


def finish_run(model, args, rank: int, world: int, architecture: str, training: dict, end: int) -> None:
    """End of a training run: export the fp16 weights (rank 0, once the last step is done), save every
    rank's learned parameters when ``--save-ranks`` (tests), and close the process group."""
    from napari_colorize.models.registry import save_checkpoint

    if rank == 0 and args.export and (end == args.steps or args.export_partial):
        meta = {"name": args.name or args.export.stem, "architecture": architecture,
                "config": model.config.to_dict(),
                "training": {**training, "steps": end, "schedule_steps": args.steps, "batch": args.batch,
                             "size": args.size, "lr": args.lr,
                             "seed": args.seed, "world_size": world, "data": str(args.data)}}
        save_checkpoint(model, args.export, meta, overwrite=args.overwrite)
        print(f"exported {args.export}")
    if args.save_ranks:
        args.out.mkdir(parents=True, exist_ok=True)
        # learned parameters (BatchNorm running statistics are per rank; DDP broadcasts rank 0's)
        torch.save({n: p.detach() for n, p in model.named_parameters() if p.requires_grad},
                   args.out / f"rank{rank}.pt")
    cleanup_distributed()


def init_from(model, path: Path, keep_temperature: bool = False, widen: bool = False) -> None:
    """Warm start: load every trainable tensor of ``path`` that the model has (same shape); parts
    the file lacks keep their initialisation, and so does the learned temperature (``log_tau``: the
    exemplar's warp, the histogram's attention) unless ``keep_temperature``. ``widen``: a
    convolution that now takes more input channels gets the file's weights in its first ones and
    zeros for the new ones (so it computes what it did). Refuses any other change of shape, and a
    file that shares nothing with the model."""
    from napari_colorize.models.registry import load_checkpoint

    sd, _ = load_checkpoint(path)
    own = model.state_dict()
    use, widened, wrong = {}, [], []
    for k, v in sd.items():
        if k not in own or (k == "log_tau" and not keep_temperature):
            continue
        w = own[k]
        if w.shape == v.shape:
            use[k] = v.to(w.dtype)
        elif widen and w.dim() == 4 and v.dim() == 4 and w.shape[0] == v.shape[0] and w.shape[2:] == v.shape[2:] \
                and w.shape[1] > v.shape[1]:
            new = torch.zeros_like(w)
            new[:, :v.shape[1]] = v.to(w.dtype)
            use[k] = new
            widened.append(k)
        else:
            wrong.append(k)
    if wrong:
        raise SystemExit(f"--init-from {path}: {len(wrong)} tensors of another shape, e.g. {wrong[:3]}")
    if not use:
        raise SystemExit(f"--init-from {path}: no tensor fits this architecture")
    model.load_state_dict(use, strict=False)
    new = sorted(k for k in model.trainable_state_dict() if k not in use)
    print(f"initialised {len(use)} tensors from {path} ({len(widened)} widened: {widened[:3]}); "
          f"{len(new)} new: {new[:6]}")


def training_parser(doc: str, configs: dict) -> argparse.ArgumentParser:
    """The arguments both training scripts share; numeric ones left None come from ``--config``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="manifest.csv from prepare_data.py, or a folder of images")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--config", choices=sorted(configs), default="cpu")
    for k in ("size", "batch", "steps"):
        ap.add_argument(f"--{k}", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--sample-every", type=int, default=500)
    ap.add_argument("--stop-after", type=int, default=None, help="stop (checkpointed) after this many steps")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-resume", action="store_true")
    ap.add_argument("--export", type=Path, default=None, help="write fp16 safetensors at the end")
    ap.add_argument("--name", default=None, help="model name recorded in the export")
    ap.add_argument("--export-partial", action="store_true",
                    help="also export when --stop-after ends the run before --steps (records the step reached)")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace an existing --export file and its .json (refused otherwise, before training)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--save-ranks", action="store_true", help="(tests) every rank saves its final weights")
    ap.add_argument("--init-from", type=Path, default=None,
                    help="start from these weights (a .safetensors export, e.g. the shipped model): every tensor "
                         "that fits; new parts keep their initialisation (a convolution that gained input "
                         "channels, where the script allows it, is widened with zeros)")
    ap.add_argument("--keep-temperature", action="store_true",
                    help="with --init-from: keep the file's learned temperature (default: start from the "
                         "architecture's), to continue a run of the same architecture")
    ap.add_argument("--balance-series", type=float, default=0.0, metavar="B",
                    help="sample each training item with probability proportional to n**-B, n the number of items "
                         "of its source series: 0 (default) every item equally likely, 1 every series (the corpus "
                         "is dominated by one package's photos)")
    return ap


def apply_config(args, configs: dict):
    """Fill arguments left None from the chosen config, and copy its other keys (arch, cosine, ...) onto args;
    then check the export's files (:func:`check_export`), before any training."""
    for k, v in configs[args.config].items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    check_export(args)
    return args


def check_export(args) -> None:
    """Refuse (SystemExit) an ``--export`` whose checkpoint or ``.json`` exists, unless ``--overwrite``:
    said at the start, not after the training."""
    from napari_colorize.models.registry import refuse_existing_checkpoint

    if args.export is not None and not args.overwrite:
        try:
            refuse_existing_checkpoint(args.export, "--overwrite")
        except FileExistsError as e:
            raise SystemExit(f"--export: {e}") from None
