"""Help choosing a reference: rank candidate colour images for a grey target.

Paper A's correspondence recommendation (Sec. 4.1), the same code that pairs the training
images (``training/pairs.py`` uses it):

1. **Global ranking.** Each image's pooled backbone feature (EfficientNet-Lite0 bottleneck,
   global average) is reduced by PCA (fitted on the candidates, at most 128 dimensions); the
   ``shortlist`` candidates nearest the target by L2 distance go on.
2. **Local refinement.** Every target position's mid-level feature (stride 16) finds its most
   similar candidate position by cosine similarity; the mean of these best matches is the
   candidate's score, and the ranking.

Images are compared as grey (a colour candidate's lightness, fed as neutral grey like the
target): a reference is good when its *content* matches, whatever its colours.

Candidate features are cached on disk (:class:`FeatureCache`), keyed by the file's path,
size and modification time, so ranking a folder of a few hundred images again costs only
the target's features and the comparisons.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

__all__ = ["Suggestion", "FeatureCache", "image_features", "pca", "local_score", "local_best", "complementary",
           "suggest_references", "check_target", "reference_problem",
           "default_cache_dir", "IMAGE_SUFFIXES"]

FEATURE_SIZE = 224
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
_VERSION = "lite0-bottleneck+stride16-v2"  # (v2: only colour references are cached)


@dataclass
class Suggestion:
    """One ranked candidate: ``index`` into the candidates given, its ``name`` (path or label),
    ``score`` (mean best local cosine similarity, higher is better) and ``distance`` (global,
    PCA space)."""

    index: int
    name: str
    score: float
    distance: float


def default_cache_dir() -> Path:
    """``$NAPARI_COLORIZE_CACHE`` or the user's cache folder (``~/.cache/napari-colorize``)."""
    env = os.environ.get("NAPARI_COLORIZE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "napari-colorize"


def thumbnail(rgb: np.ndarray, size: int = FEATURE_SIZE) -> np.ndarray:
    """Centre square crop resized to ``size`` (float32 RGB in [0, 1]); grey images are tripled."""
    from .color import rgb_value_scale

    x = np.asarray(rgb)
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, -1)
    if x.ndim == 3 and x.shape[-1] in (3, 4) and not _is_grey(x):  # colour (or nearly grey): its own white
        white, _ = rgb_value_scale(x[..., :3], x.dtype, "the candidate")
        x = np.clip(x[..., :3].astype(np.float64) / white, 0.0, 1.0).astype(np.float32)
    else:
        x = _grey01(x)
    h, w = x.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    t = torch.from_numpy(np.ascontiguousarray(x[y0:y0 + s, x0:x0 + s, :3], np.float32)).permute(2, 0, 1)[None]
    t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return t[0].permute(1, 2, 0).clamp(0, 1).numpy()


def check_target(target) -> np.ndarray:
    """The target as one 2-D image, checked as ``colorize`` reads it: 2-D grey or RGB(A) ``(H, W, 3|4)``
    (a grey ``(H, W, 1)`` or grey+alpha ``(H, W, 2)`` gives its first channel). ValueError (TypeError)
    for a stack, a 1-D array, or an array that is not numeric."""
    from .inputs import target_layout

    if isinstance(target, torch.Tensor):
        target = target.detach().cpu().numpy()
    x = np.asarray(target)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise TypeError(f"the target must be a numeric array, not {x.dtype}")
    if np.issubdtype(x.dtype, np.complexfloating):
        raise TypeError("the target is complex-valued; pass its magnitude or real part")
    one = f"references are suggested for one 2-D image (greyscale or RGB); the target has shape {x.shape}"
    if x.ndim < 2 or x.ndim > 3:
        raise ValueError(one + ("" if x.ndim < 2 else ": pick one slice of the stack"))
    if 0 in x.shape:
        raise ValueError(f"the target is empty (shape {x.shape})")
    rgb, how, _ = target_layout(x.shape)
    if rgb:
        return x
    if how != "as is":
        return x[..., 0]
    if x.ndim != 2:
        raise ValueError(one + ": pick one slice of the stack")
    return x


def reference_problem(image) -> str | None:
    """Why ``image`` cannot be a colour reference (a stack, a greyscale image, RGB without colour, or
    anything else ``colorize`` refuses as its reference: the checks of
    :func:`~napari_colorize.inputs.prepare_reference`), or None when it can be one."""
    import warnings

    from .inputs import prepare_reference

    shape = tuple(int(n) for n in np.shape(image))  # (before reading a lazy stack whole)
    if len(shape) > 3 or (len(shape) == 3 and shape[-1] not in (1, 2, 3, 4)):
        return f"a stack of shape {shape} is not a reference image"
    x = np.asarray(image) if not isinstance(image, torch.Tensor) else image.detach().cpu().numpy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepare_reference(x, [], (FEATURE_SIZE, FEATURE_SIZE), "it")
    except (ValueError, TypeError) as e:
        return str(e).split(". ")[0]  # (without colorize's advice: a histogram model)
    return None


def _is_grey(x: np.ndarray) -> bool:
    c = x[..., :3].astype(np.float32)
    return bool(np.abs(c - c.mean(-1, keepdims=True)).max() == 0)


def _grey01(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x[..., :3], np.float64)
    lo, hi = np.percentile(x, (0.1, 99.9))
    return np.clip((x - lo) / max(hi - lo, 1e-12), 0, 1).astype(np.float32)


def _as_grey_rgb(batch: torch.Tensor) -> torch.Tensor:
    """The neutral grey with each pixel's Lab lightness (how a grey target is fed)."""
    from .color import grey_rgb, rgb_to_lab

    L = rgb_to_lab(batch)[:, :1]
    return grey_rgb(L / 50.0 - 1.0)


@torch.inference_mode()
def image_features(images: Sequence[np.ndarray], backbone=None, grey: bool = True, batch: int = 16,
                   size: int = FEATURE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Global ``(N, 320)`` and mid-level ``(N, 112, s, s)`` features of square thumbnails.

    ``images``: RGB (any size, uint8 or float in [0, 1]) or 2-D grey arrays. ``grey``: compare
    lightness only (colour candidates are fed as grey, like the target).
    """
    from .models.backbones import build_backbone

    bb = backbone if backbone is not None else build_backbone("efficientnet_lite0")
    glob, mid = [], []
    for i in range(0, len(images), batch):
        x = np.stack([thumbnail(im, size) for im in images[i:i + batch]])
        t = torch.from_numpy(x).permute(0, 3, 1, 2).float()
        if grey:
            t = _as_grey_rgb(t)
        taps, bott = bb(t)
        glob.append(bott.mean((2, 3)).float().numpy())
        mid.append(taps[3].float().contiguous().numpy())
    return np.concatenate(glob), np.concatenate(mid)


def pca(x: np.ndarray, dims: int = 128, fit: np.ndarray | None = None) -> np.ndarray:
    """Project ``x`` onto the first ``dims`` principal axes of ``fit`` (default: of ``x`` itself)."""
    fit = x if fit is None else fit
    mean = fit.mean(0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    return (x - mean) @ vt[: min(dims, vt.shape[0])].T


def local_best(target_mid: np.ndarray, cand_mid: np.ndarray) -> np.ndarray:
    """Per target position, the best cosine similarity to any candidate position ``(positions,)``."""
    t = target_mid.reshape(target_mid.shape[0], -1)
    c = cand_mid.reshape(cand_mid.shape[0], -1)
    t = t / (np.linalg.norm(t, axis=0, keepdims=True) + 1e-8)
    c = c / (np.linalg.norm(c, axis=0, keepdims=True) + 1e-8)
    return (t.T @ c).max(1)


def local_score(target_mid: np.ndarray, cand_mid: np.ndarray) -> float:
    """Mean over target positions of the best cosine similarity to any candidate position."""
    return float(local_best(target_mid, cand_mid).mean())


def complementary(bests: list[np.ndarray], k: int) -> list[tuple[int, float]]:
    """A greedy set of ``k`` candidates to use together: first the best alone, then each time the one
    that raises the set's score most (the mean over target positions of the best similarity to any
    position of any chosen candidate: what a several-reference colourisation can match). ``bests``:
    :func:`local_best` of each candidate. Returns ``[(index into bests, the set's score with it)]``;
    it stops early when no candidate adds anything."""
    chosen: list[tuple[int, float]] = []
    cover = None
    for _ in range(min(k, len(bests))):
        gains = [(-np.inf if any(i == c for c, _ in chosen) else
                  float((b if cover is None else np.maximum(cover, b)).mean()), i) for i, b in enumerate(bests)]
        score, i = max(gains)
        if chosen and score <= chosen[-1][1] + 1e-6:
            break
        chosen.append((i, score))
        cover = bests[i] if cover is None else np.maximum(cover, bests[i])
    return chosen


class FeatureCache:
    """Features of image files on disk, one ``.npz`` per file, keyed by path, size and mtime."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir() / "features"

    def _key(self, path: Path) -> Path:
        st = path.stat()
        h = hashlib.sha1(f"{_VERSION}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
        return self.folder / f"{h}.npz"

    def get(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        f = self._key(path)
        if not f.exists():
            return None
        try:
            with np.load(f, allow_pickle=False) as z:
                return z["glob"], z["mid"]
        except Exception:  # a damaged cache entry is recomputed
            return None

    def put(self, path: Path, glob: np.ndarray, mid: np.ndarray) -> None:
        tmp = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.remove_stale()
            f = self._key(path)
            tmp = f.with_name(f.name + f".{os.getpid()}.tmp.npz")
            np.savez(tmp, glob=glob, mid=mid.astype(np.float16))
            tmp.replace(f)
        except OSError:  # a read-only or full cache folder: rank without caching, leave no temporary file
            if tmp is not None:
                try:
                    tmp.unlink()
                except OSError:
                    pass

    _swept = False

    def remove_stale(self) -> None:
        """Remove (once per cache) the temporary files that runs which died while writing left behind
        (``KEY.npz.PID.tmp.npz`` of a process that no longer runs, ``KEY`` a :meth:`_key` name): they would
        accumulate. Nothing else is touched: the folder may be one a user gave (``--cache-dir``)."""
        from .io import pid_alive

        if self._swept:
            return
        self._swept = True
        for t in self.folder.glob("*.npz.*.tmp.npz"):
            m = re.fullmatch(r"[0-9a-f]{40}\.npz\.(\d+)\.tmp\.npz", t.name)
            pid = int(m.group(1)) if m else None
            if pid is not None and pid != os.getpid() and not pid_alive(pid):
                try:
                    t.unlink()
                except OSError:
                    pass


def candidate_files(folder: str | Path) -> list[Path]:
    """The image files of a folder (not recursive), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _features_of_files(paths: list[Path], cache: FeatureCache | None, backbone, progress, errors: list,
                       keep: Callable | None = None) -> tuple:
    """Every readable file's features; ``keep(n, glob, mid)``, when given, receives them instead of
    the lists (which then hold only the pooled features: the caller keeps what it needs)."""
    glob, mid, kept = [], [], []
    for n, p in enumerate(paths):
        got = _file_features(p, cache, backbone, errors)
        if got is None:
            continue
        glob.append(np.asarray(got[0], np.float32))
        if keep is not None:
            keep(n, glob[-1], got[1])
        else:
            mid.append(np.asarray(got[1], np.float32))
        kept.append(n)
        if progress is not None:
            progress(n + 1, len(paths))
    return glob, mid, kept


def _file_features(p: Path, cache: FeatureCache | None, backbone, errors: list) -> tuple | None:
    """``(glob, mid)`` of one file, from the cache or computed (and cached); None (the reason in
    ``errors``) when it cannot be read."""
    from .io import read_image

    got = cache.get(p) if cache is not None else None
    if got is None:
        try:
            img = read_image(p)
            why = reference_problem(img)
            if why is not None:
                errors.append(f"{p}: {why}")
                return None
            g, m = image_features([img], backbone)
        except Exception as e:  # a bad file is named and skipped; the others are ranked
            msg = str(e)
            for named in (f"{p}: ", f"{p.name}: "):  # (read_image's messages name the file already)
                if msg.startswith(named):
                    msg = msg[len(named):]
                    break
            errors.append(f"{p}: {msg}")
            return None
        got = (g[0], m[0])
        if cache is not None:
            cache.put(p, *got)
    return got


class _Nearest:
    """The mid-level features of the ``n`` candidates nearest the target by their pooled feature
    (a heap): what the local refinement will most likely need, so that memory does not grow with the
    number of candidates (about 0.1 MB each); the others are fetched again if the final ranking
    wants them."""

    def __init__(self, target_glob: np.ndarray, n: int) -> None:
        self.target, self.n, self.heap = np.asarray(target_glob, np.float32), n, []

    def __call__(self, index: int, glob: np.ndarray, mid: np.ndarray) -> None:
        import heapq

        item = (-float(((glob - self.target) ** 2).sum()), index, np.asarray(mid, np.float32))
        if len(self.heap) < self.n:
            heapq.heappush(self.heap, item)
        elif item[0] > self.heap[0][0]:
            heapq.heapreplace(self.heap, item)

    def held(self) -> dict:
        return {i: m for _, i, m in self.heap}


def suggest_references(target: np.ndarray, candidates: Sequence[np.ndarray] | Sequence[str | Path] | str | Path,
                       top: int = 5, shortlist: int = 20, names: Sequence[str] | None = None,
                       cache: FeatureCache | None | bool = True, progress: Callable[[int, int], None] | None = None,
                       errors: list | None = None, together: int = 0) -> list[Suggestion]:
    """Rank candidate references for a grey target, best first; or, with ``together=k``, propose a set
    of up to ``k`` complementary references to use at once (:func:`complementary`).

    Candidates that cannot be colour references (a stack, a greyscale image, RGB without colour:
    :func:`reference_problem`) are skipped, each named with its reason in ``errors``.

    Parameters
    ----------
    target : 2-D grey array (any dtype) or RGB (:func:`check_target`; a stack or a 1-D array is refused).
    candidates : a folder, a list of image files, or a list of RGB arrays.
    top : how many suggestions to return.
    shortlist : candidates kept by the global ranking for the local refinement.
    names : labels for array candidates (layer names, say).
    cache : True (the default cache folder), a :class:`FeatureCache`, or False/None (no cache);
        only files are cached.
    progress : callable(done, total), called per candidate.
    errors : a list that receives one line per candidate that could not be read or is no colour reference.
    together : 0 (a ranking) or the size of the set to propose: then each suggestion's ``score`` is the
        set's score with it and those before it (the first is the best alone), from the shortlist.
    """
    from .models.backbones import build_backbone

    errors = [] if errors is None else errors
    target = check_target(target)
    if isinstance(candidates, (str, Path)):
        candidates = candidate_files(candidates)
    candidates = list(candidates)
    if not candidates:
        raise ValueError("no candidate images to rank")
    bb = build_backbone("efficientnet_lite0")
    tg, tm = image_features([target], bb)
    # memory: every candidate's pooled feature (320 numbers), mid-level features only for the
    # nearest few (a heap); the ranking is the same as with every candidate's features kept
    near = _Nearest(tg[0], max(top, shortlist))
    store = None
    if isinstance(candidates[0], (str, Path)):
        paths = [Path(c) for c in candidates]
        store = FeatureCache() if cache is True else (cache or None)
        glob, _, kept = _features_of_files(paths, store, bb, progress, errors, keep=near)
        labels = [str(p) for p in paths]
    else:
        glob, kept = [], []
        labels = list(names) if names is not None else [f"candidate {i}" for i in range(len(candidates))]
        for n, c in enumerate(candidates):
            why = reference_problem(c)
            if why is not None:
                errors.append(f"{labels[n]}: {why}")
                if progress is not None:
                    progress(n + 1, len(candidates))
                continue
            g, m = image_features([c], bb)
            glob.append(g[0])
            near(n, g[0], m[0])
            kept.append(n)
            if progress is not None:
                progress(n + 1, len(candidates))
    if not kept:
        raise ValueError("none of the candidates could be read: " + "; ".join(errors[:3]))
    G = np.stack(glob)
    z = pca(np.concatenate([tg, G]), dims=128, fit=G if len(G) > 2 else None)
    dist = ((z[1:] - z[:1]) ** 2).sum(-1)
    order = np.argsort(dist)[: max(top, shortlist)]
    held = near.held()

    def mid_of(j: int) -> np.ndarray:  # (kept[j]: the candidate's index)
        n = kept[j]
        if n in held:
            return held[n]
        if store is not None or isinstance(candidates[n], (str, Path)):
            got = _file_features(Path(candidates[n]), store, bb, errors)  # (None: gone since)
            return None if got is None else np.asarray(got[1], np.float32)
        return image_features([candidates[n]], bb)[1][0]

    bests = {j: local_best(tm[0], m) for j in order if (m := mid_of(j)) is not None}
    if together:
        picked = complementary(list(bests.values()), int(together))
        js = list(bests)
        return [Suggestion(index=kept[js[i]], name=labels[kept[js[i]]], score=s, distance=float(dist[js[i]]))
                for i, s in picked]
    scored = [(float(b.mean()), j) for j, b in bests.items()]
    scored.sort(key=lambda s: -s[0])
    return [Suggestion(index=kept[j], name=labels[kept[j]], score=s, distance=float(dist[j]))
            for s, j in scored[:top]]
