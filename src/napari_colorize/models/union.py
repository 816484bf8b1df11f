"""Several references as one: the union of their positions, for the attention, the warp and the keys.

A model given ``K`` references at the working size (a batch ``(K, 3, h, w)``) computes each one's
features as for one reference and then treats the ``K`` lattices as one set of positions:

* attention sources ``(K, C, h, w)`` are laid **side by side** along the width, ``(1, C, h, K w)``;
  the attention modules read position ``p`` of that row by its offset *within its own reference*
  (``p mod w``), so Eq. 2's sum runs over the union of the references' neighbourhoods with the
  relative encodings each reference would have alone (:mod:`napari_colorize.models.attention`);
* flattened keys ``(K, N, C)`` (the warp's and the match confidence's) become ``(1, K N, C)``, one
  softmax / one best match over every reference's positions;
* per-position colours ``(K, 2, h, w)`` are stacked along the height, ``(1, 2, K h, w)``, so that
  their flattened order is the keys' (reference by reference, row-major within each).

With ``K == 1`` every function returns its input unchanged.
"""

from __future__ import annotations

import torch

__all__ = ["side_by_side", "stacked", "union_keys", "union_reference_side"]


def side_by_side(x: torch.Tensor) -> torch.Tensor:
    """``(K, C, h, w)`` -> ``(1, C, h, K w)``: reference ``k`` at columns ``k w .. (k + 1) w - 1``."""
    K, C, h, w = x.shape
    if K == 1:
        return x
    return x.permute(1, 2, 0, 3).reshape(1, C, h, K * w)


def stacked(x: torch.Tensor) -> torch.Tensor:
    """``(K, C, h, w)`` -> ``(1, C, K h, w)``: flattened, reference by reference (the keys' order)."""
    K, C, h, w = x.shape
    if K == 1:
        return x
    return x.permute(1, 0, 2, 3).reshape(1, C, K * h, w)


def union_keys(keys: torch.Tensor) -> torch.Tensor:
    """Flattened keys ``(K, N, C)`` -> ``(1, K N, C)``."""
    K, N, C = keys.shape
    return keys if K == 1 else keys.reshape(1, K * N, C)


def union_reference_side(features: dict) -> dict:
    """An exemplar network's reference side of ``K`` references (batch ``K``, from
    ``encode_reference``) as the reference side of their union (batch 1): attention sources side by
    side, the prior's keys and colours and the match keys as one set of positions."""
    out = {}
    for key, value in features.items():
        if key == "prior":
            keys, ab = value
            out[key] = (union_keys(keys), stacked(ab))
        elif key in ("match", "match_inner"):
            out[key] = {lv: union_keys(k) for lv, k in value.items()}
        else:
            out[key] = side_by_side(value)
    return out
