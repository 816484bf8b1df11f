"""What the semantic judge rewards: its agreement with the truth on the truth's own colour transformed, and
on a model's colour with one part (hue or chroma) swapped for the truth's, on the 'other-source' protocol,
printed as Markdown (docs/MODELS.md, issue 18's eleventh step)::

    python -m training.judge_probe --data data/manifest.csv exemplar

The judge is EfficientNet-Lite2 (``training.evaluate.SemanticJudge``), only ever used to measure. Each row
gives top-1 agreement, ``agree_p`` (the judge's probability of the truth's class) and ``agree_p`` minus the
grey input's with a paired bootstrap interval. The rows ask which part of the colour the judge needs:

* the truth's colour halved, flattened to its mean, its hues turned, blurred, or with its chroma kept and
  one hue everywhere (the reference's mean hue), or its layout with the reference's statistics
  (a Reinhard transfer that knew the truth's layout);
* the model's colour with the truth's chroma (its own hues), with the truth's hues (its own chroma), and
  with its own chroma values moved to the pixels where the truth's chroma has the same rank (the same
  chroma values, only laid out as the truth's).
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.ndimage import gaussian_filter

from .evaluate import SIZE, SemanticJudge, eval_images, grey_of, load_with_output, reference_pool, references
from .paired import paired

#: the truth's colour transformed: (Lab of the truth, Lab of the reference) -> ab
TRUTH_ROWS = ("truth", "truth chroma x0.5", "truth flat (its mean ab)", "truth hue +60 deg", "truth hue +180 deg",
              "truth blurred (sigma 16)", "truth chroma, one hue (the reference's mean)",
              "truth layout, reference's mean and spread")
MODEL_ROWS = ("{m}", "{m} hue, truth chroma", "{m} chroma, truth hue", "{m} chroma values in the truth's chroma order")


def polar(ab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chroma and hue (radians) of ``(..., 2)`` ab."""
    return np.hypot(ab[..., 0], ab[..., 1]), np.arctan2(ab[..., 1], ab[..., 0])


def cartesian(chroma: np.ndarray, hue: np.ndarray) -> np.ndarray:
    return np.stack([chroma * np.cos(hue), chroma * np.sin(hue)], -1)


def rank_match(order: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` (their distribution kept exactly) laid out in the order of ``order``: the pixel with the
    k-th smallest ``order`` gets the k-th smallest value."""
    out = np.empty(order.size)
    out[np.argsort(order, axis=None, kind="stable")] = np.sort(values, axis=None)
    return out.reshape(order.shape)


def truth_ab(row: str, t: np.ndarray, r: np.ndarray) -> np.ndarray:
    """ab of a :data:`TRUTH_ROWS` row from the truth's ab ``t`` and the reference's ab ``r`` (``(H, W, 2)``)."""
    chroma, hue = polar(t)
    if row == "truth":
        return t
    if row == "truth chroma x0.5":
        return t * 0.5
    if row == "truth flat (its mean ab)":
        return np.broadcast_to(t.reshape(-1, 2).mean(0), t.shape)
    if row.startswith("truth hue +"):
        return cartesian(chroma, hue + np.deg2rad(float(row.split("+")[1].split()[0])))
    if row == "truth blurred (sigma 16)":
        return np.stack([gaussian_filter(t[..., c], 16) for c in (0, 1)], -1)
    if row == "truth chroma, one hue (the reference's mean)":
        m = r.reshape(-1, 2).mean(0)
        return cartesian(chroma, np.full_like(hue, np.arctan2(m[1], m[0])))
    if row == "truth layout, reference's mean and spread":
        tf, rf = t.reshape(-1, 2), r.reshape(-1, 2)
        return (t - tf.mean(0)) / (tf.std(0) + 1e-6) * rf.std(0) + rf.mean(0)
    raise ValueError(row)


def model_ab(row: str, o: np.ndarray, t: np.ndarray) -> np.ndarray:
    """ab of a :data:`MODEL_ROWS` row from the model's ab ``o`` and the truth's ``t``."""
    oc, oh = polar(o)
    tc, th = polar(t)
    if row == "{m}":
        return o
    if row == "{m} hue, truth chroma":
        return cartesian(tc, oh)
    if row == "{m} chroma, truth hue":
        return cartesian(oc, th)
    if row == "{m} chroma values in the truth's chroma order":
        return cartesian(rank_match(tc, oc), oh)
    raise ValueError(row)


def probe(model, images, refs, judge) -> dict[str, dict[str, np.ndarray]]:
    """Per row, each view's ``agree`` (0/1) and ``agree_p``."""
    import napari_colorize as nc
    from skimage.color import lab2rgb, rgb2lab

    def lab(x):
        return rgb2lab(np.asarray(x, np.float64) / (255.0 if np.asarray(x).dtype == np.uint8 else 1.0))

    name = getattr(model, "name", "model")
    rows = ("grey",) + TRUTH_ROWS + tuple(r.format(m=name) for r in MODEL_ROWS)
    out = {k: {"agree": [], "agree_p": []} for k in rows}
    for img, ref in zip(images, refs):
        truth = lab(img)
        cls = int(judge.probs(img).argmax())
        t, r = truth[..., 1:], lab(ref)[..., 1:]
        o = lab(nc.colorize(model, grey_of(img), reference=ref, size=SIZE, return_attention=False).rgb)[..., 1:]
        abs_ = {"grey": np.zeros_like(t), **{k: truth_ab(k, t, r) for k in TRUTH_ROWS},
                **{k.format(m=name): model_ab(k, o, t) for k in MODEL_ROWS}}
        for k, ab in abs_.items():
            p = judge.probs(np.clip(lab2rgb(np.concatenate([truth[..., :1], ab], -1)), 0, 1).astype(np.float32))
            out[k]["agree"].append(float(int(p.argmax()) == cls))
            out[k]["agree_p"].append(float(p[cls]))
    return {k: {m: np.asarray(v) for m, v in d.items()} for k, d in out.items()}


def print_probe(res: dict[str, dict[str, np.ndarray]]) -> None:
    grey = res["grey"]["agree_p"]
    print(f"\n{len(grey)} views, protocol 'other-source'\n")
    print("| colour | agreement | `agree_p` | `agree_p` - grey [95 %] |\n|---|---:|---:|---:|")
    for k, d in res.items():
        diff = "" if k == "grey" else "{:+.3f} [{:+.3f}, {:+.3f}]".format(*paired(d["agree_p"], grey))
        print(f"| {k} | {d['agree'].mean():.3f} | {d['agree_p'].mean():.3f} | {diff} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("model", help="an exemplar model, as training.evaluate takes it (name, file, NAME+key=value)")
    a = ap.parse_args(argv)
    images = eval_images(a.data, a.split)[: a.limit]
    refs = references(images, "other-source", reference_pool(a.data, images))
    print_probe(probe(load_with_output(a.model), images, refs, SemanticJudge()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
