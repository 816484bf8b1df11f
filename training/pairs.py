"""Target-reference pairs: the correspondence recommendation pipeline of paper A, Sec. 4.1.

1. **Global ranking.** Every image's pooled backbone feature (EfficientNet-Lite0 bottleneck,
   global average; VGG-19 fc1 in the paper) is reduced to 128 dimensions by PCA; the top-5
   other images of the *same class* by L2 distance are the candidates. Class = the sub-folder
   (ImageNet layout); with no classes, k-means clusters of the global features.
2. **Local refinement.** For each candidate, every target position's mid-level feature
   (stride 16; ``relu4_3`` in the paper) finds its most similar candidate position by cosine
   similarity; the candidate with the highest mean best-match similarity is the top-1.
3. **Sampling on the fly** (:func:`sample_reference`): top-1 with weight 0.6, a random top-5
   candidate with 0.3, a random image of the class with 0.1.

``build_pairs`` runs once and caches its result as JSON beside the manifest. The features, PCA and
local score are :mod:`napari_colorize.suggest`'s, which ranks references for users.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from napari_colorize.suggest import image_features as image_features_of
from napari_colorize.suggest import local_score, pca  # noqa: F401  (one implementation with the user feature)

from .data import source_series  # noqa: F401  (the series of a source: data's, used here and by evaluate)

WEIGHTS = (0.6, 0.3, 0.1)


def image_features(corpus, size: int = 224, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Global (N, 320) and mid-level (N, 112, s, s) features of every corpus thumbnail (in colour:
    the pairs were built so; the user feature compares lightness only)."""
    thumbs = [corpus.thumbnail(j, size) for j in range(len(corpus))]
    return image_features_of(thumbs, grey=False, batch=batch, size=size)


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 50) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = x[rng.choice(len(x), size=k, replace=False)]
    for _ in range(iters):
        lab = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
        new = np.stack([x[lab == j].mean(0) if (lab == j).any() else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return lab


def build_pairs(corpus, labels: list[str] | None = None, top: int = 5, seed: int = 0) -> dict:
    """Top-1, top-5 and class members for every corpus item (indices)."""
    g, mid = image_features(corpus)
    z = pca(g, 128)
    n = len(z)
    if labels is None or len(set(labels)) <= 1:
        k = max(2, min(20, n // 15))
        classes = kmeans(z, k, seed).tolist()
    else:
        names = sorted(set(labels))
        classes = [names.index(l) for l in labels]
    classes = np.asarray(classes)
    d = ((z[:, None] - z[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    out = {"top1": [], "top5": [], "class": [], "classes": classes.tolist()}
    for i in range(n):
        same = np.flatnonzero((classes == classes[i]) & (np.arange(n) != i))
        pool = same if len(same) >= top else np.flatnonzero(np.arange(n) != i)  # tiny class: fall back to all
        cand = pool[np.argsort(d[i, pool])[:top]]
        scores = [local_score(mid[i], mid[j]) for j in cand]
        out["top1"].append(int(cand[int(np.argmax(scores))]))
        out["top5"].append([int(j) for j in cand])
        out["class"].append([int(j) for j in (same if len(same) else pool)])
    return out


def load_or_build_pairs(corpus, cache: Path, labels=None) -> dict:
    key = [it.path for it in corpus.items]
    if cache.exists():
        data = json.loads(cache.read_text())
        if data.get("items") == key:
            return data
    data = build_pairs(corpus, labels)
    data["items"] = key
    write_cache(cache, data)
    return data


def sample_reference(pairs: dict, i: int, rng: np.random.Generator, weights=WEIGHTS) -> tuple[int, int]:
    """Reference index for target ``i`` and which category was drawn (0 top-1, 1 top-5, 2 class)."""
    cat = int(rng.choice(3, p=np.asarray(weights) / np.sum(weights)))
    if cat == 0:
        return pairs["top1"][i], 0
    pool = pairs["top5"][i] if cat == 1 else pairs["class"][i]
    return int(pool[int(rng.integers(len(pool)))]), cat


def build_other_source(corpus, top: int = 5) -> dict:
    """For every item, the ``top`` most similar items (PCA of the pooled backbone features, as
    :func:`build_pairs`) of *another source series*: the references users have (issue 18's
    'other-source' protocol), for training."""
    g, _ = image_features(corpus)
    z = pca(g, 128)
    fam = np.asarray([source_series(it.label) for it in corpus.items])
    d = ((z[:, None] - z[None]) ** 2).sum(-1)
    d[fam[:, None] == fam[None, :]] = np.inf
    out = []
    for i in range(len(z)):
        order = np.argsort(d[i])[:top]
        out.append([int(j) for j in order if np.isfinite(d[i, j])])
    return {"other_top": out}


def cache_dir(data, out: Path) -> Path:
    """Where the pairs caches of a training run go: beside a manifest (``data`` a ``.csv``), else in the
    run's ``out`` folder (a folder of images is not ours to write into)."""
    return Path(data).parent if str(data).endswith(".csv") else Path(out)


def load_or_build_other_source(corpus, cache: Path) -> dict:
    """:func:`build_other_source`, cached as JSON beside the manifest (rebuilt when the items change)."""
    key = [it.path for it in corpus.items]
    if cache.exists():
        data = json.loads(cache.read_text())
        if data.get("items") == key:
            return data
    data = {"items": key, **build_other_source(corpus)}
    write_cache(cache, data)
    return data


def write_cache(cache: Path, data: dict) -> None:
    """``data`` as JSON at ``cache``, atomically: each writer writes its own temporary file and renames it
    (the ranks of a distributed run build the same cache at once; a reader never sees half a file)."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=cache.name + ".", suffix=".part", dir=cache.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(data))
        os.replace(tmp, cache)
    finally:
        tmp.unlink(missing_ok=True)
