"""Cross-attention for unsupervised style transfer (paper A, Sec. 3.2).

Queries come from the projected grey target ``F_T``, keys and values from the
projected colour reference ``F_R``. Eq. 2 of the paper, for a target position o:

    F_TR(o) = sum_{p in N_m(o)} softmax_p( q_o^T k_p + q_o^T r^q_{p-o} + k_p^T r^k_{p-o} ) (v_p + r^v_{p-o})

with learned relative positional encodings ``r^q, r^k, r^v`` (one table each).
Logits are scaled by ``1/sqrt(d)`` (d: head width) as in the transformer.

* :class:`AxialAttention` computes Eq. 2 along one axis (a ``1 x m`` line):
  the width step, then the height step, give the axial module of Fig. 2.
* :class:`StandardAttention` computes Eq. 2 over the whole 2-D lattice (the
  ablation "standard attention"); its 2-D relative encoding is factorised into
  a row and a column table, ``r_{(dy, dx)} = r^row_{dy} + r^col_{dx}``, so that it
  stays small and works at any size (as in stand-alone self-attention).
* The span ``m``: ``None`` attends to the whole line/lattice; an integer
  restricts attention to offsets ``|p - o| <= m // 2`` (for high resolutions).
  Relative offsets beyond the learned table (``max_rel``) share its end entries.

Step 2 (height) of the axial module takes its keys and values from the output
of step 1 (width), so the effective 2-D attention of target position (i, j) over
reference position (i', j') composes exactly:
``M[i, j, i', j'] = A_h[i, j, i'] * A_w[i', j, j']`` (heads averaged).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .maps import AttentionMaps

__all__ = ["AxialAttention", "StandardAttention", "CrossAttentionModule", "relative_index",
           "reference_count"]


def relative_index(n_q: int, n_k: int, max_rel: int, device=None, period: int | None = None) -> torch.Tensor:
    """Index into a ``2*max_rel - 1`` table of the offset ``p - o`` (clipped), shape ``(n_q, n_k)``.
    ``period``: key positions are read modulo it (several references side by side, each ``period``
    long: :mod:`napari_colorize.models.union`)."""
    o = torch.arange(n_q, device=device)[:, None]
    p = torch.arange(n_k, device=device)[None, :]
    if period:
        p = p % period
    return (p - o).clamp(-(max_rel - 1), max_rel - 1) + (max_rel - 1)


def _span_mask(n_q: int, n_k: int, span: int | None, device, period: int | None = None) -> torch.Tensor | None:
    if span is None:
        return None
    o = torch.arange(n_q, device=device)[:, None]
    p = torch.arange(n_k, device=device)[None, :]
    if period:
        p = p % period
    return (p - o).abs() > span // 2  # True = masked out


def reference_count(target: torch.Tensor, source: torch.Tensor, along_width: bool = True) -> int:
    """How many references ``source`` holds side by side along the width (1: the target's shape)."""
    if source.shape == target.shape:
        return 1
    ok = (along_width and source.shape[:3] == target.shape[:3] and source.shape[3] % target.shape[3] == 0)
    assert ok, (target.shape, source.shape)
    return source.shape[3] // target.shape[3]


class _QKV(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by {heads} heads")
        self.heads, self.dim_head = heads, dim // heads
        self.to_q = nn.Conv2d(dim, dim, 1, bias=False)  # W_q
        self.to_k = nn.Conv2d(dim, dim, 1, bias=False)  # W_k
        self.to_v = nn.Conv2d(dim, dim, 1, bias=False)  # W_v

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, heads, H, W, d)."""
        B, C, H, W = x.shape
        return x.view(B, self.heads, self.dim_head, H, W).permute(0, 1, 3, 4, 2)

    @staticmethod
    def merge(x: torch.Tensor) -> torch.Tensor:
        """(B, heads, H, W, d) -> (B, C, H, W)."""
        B, n, H, W, d = x.shape
        return x.permute(0, 1, 4, 2, 3).reshape(B, n * d, H, W)


class AxialAttention(_QKV):
    """Multi-head cross-attention along one axis with Eq. 2's relative encodings.

    Parameters
    ----------
    dim : int
        Channels ``h`` of the projected features.
    heads : int
        Number of heads; each has its own slice of ``W_q, W_k, W_v``.
    max_rel : int
        Length of the learned offset tables (offsets ``-(max_rel-1) .. max_rel-1``).
    span : int or None
        Local span ``m`` along the axis; None for the whole axis.
    axis : {"width", "height"}
    """

    def __init__(self, dim: int, heads: int, max_rel: int, span: int | None = None, axis: str = "width") -> None:
        super().__init__(dim, heads)
        if axis not in ("width", "height"):
            raise ValueError("axis must be 'width' or 'height'")
        self.axis, self.max_rel, self.span = axis, max_rel, span
        d = self.dim_head
        self.r_q = nn.Parameter(torch.randn(2 * max_rel - 1, d) * d**-0.5)
        self.r_k = nn.Parameter(torch.randn(2 * max_rel - 1, d) * d**-0.5)
        self.r_v = nn.Parameter(torch.randn(2 * max_rel - 1, d) * d**-0.5)

    def forward(self, target: torch.Tensor, source: torch.Tensor, return_attention: bool = False):
        """``target`` gives queries, ``source`` keys and values; both ``(B, h, H, W)``.

        Returns the fused map ``(B, h, H, W)`` and, when asked, the attention
        ``(B, heads, H, W, L)``: for a query at (i, j) the weights over the L
        positions of its line (columns j' for width, rows i' for height).

        Several references: the width step's ``source`` may be ``(B, h, H, K W)``, K references side
        by side (:func:`~napari_colorize.models.union.side_by_side`); a query then attends to its row
        in all of them at once (one softmax over ``K W`` positions, ``L = K W``), each position with the
        offset it has within its own reference.
        """
        reference_count(target, source, along_width=self.axis == "width")
        q, k, v = self.split(self.to_q(target)), self.split(self.to_k(source)), self.split(self.to_v(source))
        if self.axis == "height":  # attend along H: make H the last lattice axis
            q, k, v = (t.transpose(2, 3) for t in (q, k, v))
        n, m = q.shape[3], k.shape[3]
        idx = relative_index(n, m, self.max_rel, q.device, period=n)
        rq, rk, rv = self.r_q[idx], self.r_k[idx], self.r_v[idx]  # (n_o, n_p, d): r_{p-o}
        scale = self.dim_head**-0.5
        logits = torch.einsum("bhxod,bhxpd->bhxop", q, k)
        logits = logits + torch.einsum("bhxod,opd->bhxop", q, rq)
        logits = logits + torch.einsum("bhxpd,opd->bhxop", k, rk)
        logits = logits * scale
        mask = _span_mask(n, m, self.span, q.device, period=n)
        if mask is not None:
            logits = logits.masked_fill(mask, float("-inf"))
        attn = logits.softmax(dim=-1)
        out = torch.einsum("bhxop,bhxpd->bhxod", attn, v) + torch.einsum("bhxop,opd->bhxod", attn, rv)
        if self.axis == "height":
            out = out.transpose(2, 3)
            attn = attn.transpose(2, 3)  # (B, heads, H, W, H): query (i, j) over rows i'
        out = self.merge(out)
        return (out, attn) if return_attention else (out, None)


class StandardAttention(_QKV):
    """Multi-head cross-attention over the whole 2-D lattice (Eq. 2 with an m x m region).

    The relative encoding of the 2-D offset is ``r^row_{dy} + r^col_{dx}``.
    Memory grows with ``(H W)^2``: this is the ablation that axial attention replaces.
    """

    def __init__(self, dim: int, heads: int, max_rel: int, span: int | None = None) -> None:
        super().__init__(dim, heads)
        self.max_rel, self.span = max_rel, span
        d = self.dim_head
        for name in ("q", "k", "v"):
            setattr(self, f"row_{name}", nn.Parameter(torch.randn(2 * max_rel - 1, d) * d**-0.5))
            setattr(self, f"col_{name}", nn.Parameter(torch.randn(2 * max_rel - 1, d) * d**-0.5))

    def forward(self, target, source, return_attention: bool = False):
        """As :meth:`AxialAttention.forward`; ``source`` may hold K references side by side
        ``(B, h, H, K W)``: one softmax over all ``K H W`` positions."""
        reference_count(target, source)
        q, k, v = self.split(self.to_q(target)), self.split(self.to_k(source)), self.split(self.to_v(source))
        B, n, H, W, d = q.shape
        KW = k.shape[3]
        iy = relative_index(H, H, self.max_rel, q.device)  # [y, Y] -> r_{Y - y}
        ix = relative_index(W, KW, self.max_rel, q.device, period=W)
        scale = d**-0.5
        logits = torch.einsum("bnyxd,bnYXd->bnyxYX", q, k)
        logits = logits + torch.einsum("bnyxd,yYd->bnyxY", q, self.row_q[iy])[..., None]
        logits = logits + torch.einsum("bnyxd,xXd->bnyxX", q, self.col_q[ix])[..., None, :]
        logits = logits + torch.einsum("bnYXd,yYd->bnyYX", k, self.row_k[iy])[:, :, :, None]
        logits = logits + torch.einsum("bnYXd,xXd->bnxYX", k, self.col_k[ix])[:, :, None]
        logits = logits * scale
        my, mx = _span_mask(H, H, self.span, q.device), _span_mask(W, KW, self.span, q.device, period=W)
        if my is not None:
            mask = my[:, None, :, None] | mx[None, :, None, :]  # (y, x, Y, X)
            logits = logits.masked_fill(mask, float("-inf"))
        attn = logits.reshape(B, n, H, W, H * KW).softmax(-1).reshape(B, n, H, W, H, KW)
        out = torch.einsum("bnyxYX,bnYXd->bnyxd", attn, v)
        out = out + torch.einsum("bnyxY,yYd->bnyxd", attn.sum(-1), self.row_v[iy])
        out = out + torch.einsum("bnyxX,xXd->bnyxd", attn.sum(-2), self.col_v[ix])
        out = self.merge(out)
        return (out, attn) if return_attention else (out, None)


class CrossAttentionModule(nn.Module):
    """The attention module of Fig. 2.

    (1) BN + ReLU on the target and the reference sources; (2) multi-head
    attention (axial: width step then height step; or standard); heads are
    concatenated and projected by a 1x1 convolution; (3) residual connection to
    the target identity and ReLU.
    """

    def __init__(self, dim: int, heads: int, max_rel: int, kind: str = "axial", span: int | None = None) -> None:
        super().__init__()
        if kind not in ("axial", "standard"):
            raise ValueError("attention kind must be 'axial' or 'standard'")
        self.kind = kind
        self.norm_t = nn.Sequential(nn.BatchNorm2d(dim), nn.ReLU(inplace=True))
        self.norm_r = nn.Sequential(nn.BatchNorm2d(dim), nn.ReLU(inplace=True))
        if kind == "axial":
            self.width = AxialAttention(dim, heads, max_rel, span, axis="width")
            self.height = AxialAttention(dim, heads, max_rel, span, axis="height")
        else:
            self.attn = StandardAttention(dim, heads, max_rel, span)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, t: torch.Tensor, r: torch.Tensor, return_attention: bool = False):
        tn, rn = self.norm_t(t), self.norm_r(r)
        if self.kind == "axial":
            y, aw = self.width(tn, rn, return_attention)
            y, ah = self.height(tn, y, return_attention)
            maps = (aw, ah)
        else:
            y, a = self.attn(tn, rn, return_attention)
            maps = (a,)
        out = F.relu(t + self.proj(y))
        return out, (maps if return_attention else None)

    def to_maps(self, raw, stride: int, index: int = 0, block_centred: bool = False) -> AttentionMaps:
        """Convert raw attention tensors (batch element ``index``) to :class:`AttentionMaps` (``block_centred``:
        the backbone's cell placement, ``BackboneSpec.block_centred``)."""
        np_ = lambda a: a[index].detach().float().cpu().numpy()  # noqa: E731
        if self.kind == "axial":
            aw, ah = np_(raw[0]), np_(raw[1])
            return AttentionMaps("axial", stride, width=aw, height=ah, shape=aw.shape[1:3], block_centred=block_centred)
        a = np_(raw[0])
        return AttentionMaps("standard", stride, full=a, shape=a.shape[1:3], block_centred=block_centred)
