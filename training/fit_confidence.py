"""Fits the match confidence's coefficients (a logistic regression) for an exemplar model, and prints them.

The confidence (``models/coherence.py``: ``sigmoid(bias + sum_k c_k best_k)``, ``best_k`` the best cosine
similarity of each target position to the reference at backbone level k) is fitted to predict "the
network's colour is within ``--tolerance`` ab units of the truth here", on training views with both kinds
of reference the output stage must tell apart (the photo's own copy, 'self', and a related photo of
another source, 'other-source')::

    python -m training.fit_confidence --data data/manifest.csv --split train --limit 120 exemplar
    python -m training.fit_confidence --data data/manifest.csv --split train --limit 120 exemplar+confidence_cells=16

The network's colour is its P1 through the config's guided filter (``refine``), before the output stage
that the confidence steers (spreading, fading in the dark). (With ``prior_cells_gate`` the network's own warp
is chosen by the confidence under the model's current coefficients, ``NAME+confidence=...`` to give others.) Pixels are sampled every ``--step`` pixels of
each view. Prints the cross-entropy of the fit, of a constant, and of each level alone, and the
coefficients as a config's ``confidence`` (JSON), then the percentiles of each view's mean confidence
under the new coefficients (the output stage's gates are the 90th of 'other-source' and the 10th of
'self', docs/MODELS.md).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from scipy.optimize import minimize

from napari_colorize.color import AB_SCALE, L_SCALE, L_SHIFT, grey_to_L, normalize_lab, rgb_to_lab
from napari_colorize.models.coherence import CONFIDENCE_LEVELS, lattice_to_pixels, match_confidence

from .evaluate import SIZE, eval_images, grey_of, load_with_output, reference_pool, references

FEATURES = tuple(f"best{lv}" for lv in CONFIDENCE_LEVELS)


def _unit(rgb: np.ndarray) -> np.ndarray:
    """An RGB view as float32 in [0, 1] (integer views scaled by their type's maximum)."""
    a = np.asarray(rgb)
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.float32) / np.iinfo(a.dtype).max
    return a.astype(np.float32)


def view_samples(net, grey: np.ndarray, reference: np.ndarray, truth: np.ndarray, tolerance: float,
                 step: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """One view's features ``(n, len(FEATURES))`` and labels ``(n,)`` on a grid of every ``step`` pixels,
    and its similarities (for the view's mean confidence)."""
    reference, truth = _unit(reference), _unit(truth)
    L = (grey_to_L(torch.from_numpy(np.asarray(grey, np.float32))) / L_SCALE - L_SHIFT)[None, None]
    R = torch.from_numpy(np.ascontiguousarray(reference, np.float32)).permute(2, 0, 1)[None]
    aux: dict = {}
    with torch.inference_mode():
        ab = net.refine(L, net(L, reference_rgb=R, aux=aux)[0])  # (P1 at L's size, as the engine takes it)
    truth_ab = normalize_lab(rgb_to_lab(torch.from_numpy(np.ascontiguousarray(truth, np.float32)).permute(2, 0, 1)[None]))[:, 1:]
    err = ((ab - truth_ab) * AB_SCALE).norm(dim=1)[0]  # ab units
    sims = aux["match"]
    centred = net.backbone.spec.block_centred  # (as match_confidence)
    cols = [lattice_to_pixels(sims[k], tuple(L.shape[-2:]), centred)[0, 0] for k in FEATURES]
    sl = (slice(step // 2, None, step),) * 2
    X = np.stack([c[sl].flatten().numpy() for c in cols], 1)
    y = (err[sl].flatten() < tolerance).numpy().astype(np.float64)
    return X, y, sims


def fit_logistic(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Coefficients ``[bias, c_1, ...]`` of a logistic regression by L-BFGS, and its mean cross-entropy."""
    A = np.concatenate([np.ones((len(X), 1)), X], 1)

    def loss(w):
        z = A @ w
        # log(1 + e^z) - y z, stably; gradient A^T (sigmoid(z) - y)
        ce = np.logaddexp(0.0, z) - y * z
        return ce.mean(), A.T @ (1.0 / (1.0 + np.exp(-z)) - y) / len(y)

    r = minimize(loss, np.zeros(A.shape[1]), jac=True, method="L-BFGS-B")
    return r.x, float(r.fun)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="an exemplar model's name or checkpoint file, or NAME+key=value (evaluate's specs)")
    ap.add_argument("--data", required=True, help="manifest.csv")
    ap.add_argument("--split", default="train")
    ap.add_argument("--limit", type=int, default=120)
    ap.add_argument("--tolerance", type=float, default=11.0, help="ab units (default 11)")
    ap.add_argument("--step", type=int, default=4, help="sample every STEP pixels (default 4)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    model = load_with_output(a.model)
    net = getattr(model, "network", None)
    if net is None or not hasattr(net, "match_similarities"):
        raise SystemExit(f"{a.model}: not an exemplar network with a match confidence")
    images = eval_images(a.data, a.split)[: a.limit]
    Xs, ys, sims_by = [], [], {}
    for protocol in ("self", "other-source"):
        refs = references(images, protocol, reference_pool(a.data, images) if protocol != "self" else None)
        sims_by[protocol] = []
        for img, ref in zip(images, refs):
            X, y, sims = view_samples(net, grey_of(img), ref, img, a.tolerance, a.step)
            Xs.append(X)
            ys.append(y)
            sims_by[protocol].append(sims)
    X, y = np.concatenate(Xs), np.concatenate(ys)
    p = y.mean()
    const = float(-(p * np.log(p) + (1 - p) * np.log(1 - p)))
    print(f"\n### Match confidence fitted for {a.model}: {len(images)} {a.split} views x 2 protocols, "
          f"{len(y)} pixels, {100 * p:.1f} % within {a.tolerance:g} ab units\n")
    print("| features | cross-entropy |\n|---|---:|")
    print(f"| a constant | {const:.4f} |")
    for i, k in enumerate(FEATURES):
        print(f"| {k} alone | {fit_logistic(X[:, [i]], y)[1]:.4f} |")
    w, ce = fit_logistic(X, y)
    print(f"| {' + '.join(FEATURES)} | {ce:.4f} |")
    coefficients = {"bias": round(float(w[0]), 2), **{k: round(float(c), 2) for k, c in zip(FEATURES, w[1:])}}
    print(f"\nconfidence = {json.dumps(coefficients)}\n")
    for protocol, all_sims in sims_by.items():
        means = [float(match_confidence(s, coefficients, (SIZE, SIZE), net.backbone.spec.block_centred).mean())
                 for s in all_sims]
        q = np.percentile(means, [10, 50, 90])
        print(f"'{protocol}': each view's mean confidence, percentiles 10 / 50 / 90: "
              f"{q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
