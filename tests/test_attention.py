import numpy as np
import pytest
import torch

from napari_colorize.models.attention import AxialAttention, CrossAttentionModule, StandardAttention


def _naive_axial(att: AxialAttention, t, r):
    """Eq. 2 along the width, one query at a time, with python loops."""
    q = att.to_q(t)
    k = att.to_k(r)
    v = att.to_v(r)
    B, C, H, W = q.shape
    n, d = att.heads, att.dim_head
    K = att.max_rel
    out = torch.zeros_like(q)
    for b in range(B):
        for h in range(n):
            sl = slice(h * d, (h + 1) * d)
            for i in range(H):
                for j in range(W):
                    logits, vals = [], []
                    for p in range(W):
                        off = p - j
                        if att.span is not None and abs(off) > att.span // 2:
                            continue
                        e = max(-(K - 1), min(K - 1, off)) + K - 1
                        qo, kp = q[b, sl, i, j], k[b, sl, i, p]
                        logits.append((qo @ kp + qo @ att.r_q[e] + kp @ att.r_k[e]) / d**0.5)
                        vals.append(v[b, sl, i, p] + att.r_v[e])
                    w = torch.softmax(torch.stack(logits), 0)
                    out[b, sl, i, j] = (w[:, None] * torch.stack(vals)).sum(0)
    return out


def _naive_standard(att: StandardAttention, t, r):
    q, k, v = att.to_q(t), att.to_k(r), att.to_v(r)
    B, C, H, W = q.shape
    n, d, K = att.heads, att.dim_head, att.max_rel
    out = torch.zeros_like(q)
    ix = lambda o: max(-(K - 1), min(K - 1, o)) + K - 1  # noqa: E731
    for h in range(n):
        sl = slice(h * d, (h + 1) * d)
        for i in range(H):
            for j in range(W):
                logits, vals = [], []
                for y in range(H):
                    for x in range(W):
                        rq = att.row_q[ix(y - i)] + att.col_q[ix(x - j)]
                        rk = att.row_k[ix(y - i)] + att.col_k[ix(x - j)]
                        rv = att.row_v[ix(y - i)] + att.col_v[ix(x - j)]
                        qo, kp = q[0, sl, i, j], k[0, sl, y, x]
                        logits.append((qo @ kp + qo @ rq + kp @ rk) / d**0.5)
                        vals.append(v[0, sl, y, x] + rv)
                w = torch.softmax(torch.stack(logits), 0)
                out[0, sl, i, j] = (w[:, None] * torch.stack(vals)).sum(0)
    return out


@pytest.mark.parametrize("span,max_rel", [(None, 6), (3, 6), (None, 3)])
def test_axial_attention_matches_a_naive_loop(span, max_rel):
    torch.manual_seed(0)
    att = AxialAttention(8, 2, max_rel=max_rel, span=span, axis="width")
    t, r = torch.randn(2, 8, 3, 5), torch.randn(2, 8, 3, 5)
    with torch.no_grad():
        fast, a = att(t, r, return_attention=True)
        slow = _naive_axial(att, t, r)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert a.shape == (2, 2, 3, 5, 5)
    assert torch.allclose(a.sum(-1), torch.ones(2, 2, 3, 5))
    if span is not None:
        assert (a[..., 0, 4] == 0).all()  # offset 4 > span // 2


def test_height_axis_is_the_width_axis_transposed():
    torch.manual_seed(0)
    h = AxialAttention(8, 2, max_rel=5, axis="height")
    w = AxialAttention(8, 2, max_rel=5, axis="width")
    w.load_state_dict(h.state_dict())
    t, r = torch.randn(1, 8, 4, 3), torch.randn(1, 8, 4, 3)
    with torch.no_grad():
        oh, ah = h(t, r, True)
        ow, aw = w(t.transpose(2, 3), r.transpose(2, 3), True)
    assert torch.allclose(oh, ow.transpose(2, 3), atol=1e-6)
    assert ah.shape == (1, 2, 4, 3, 4)


def test_standard_attention_matches_a_naive_loop():
    torch.manual_seed(0)
    att = StandardAttention(8, 2, max_rel=3)
    t, r = torch.randn(1, 8, 3, 4), torch.randn(1, 8, 3, 4)
    with torch.no_grad():
        fast, a = att(t, r, True)
        slow = _naive_standard(att, t, r)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert a.shape == (1, 2, 3, 4, 3, 4)


def test_effective_axial_attention_composes_exactly():
    """With identity value maps and no value encodings, the module output is the
    effective 2-D attention applied to the reference: M[i,j,i',j'] = A_h[i,j,i'] A_w[i',j,j']."""
    torch.manual_seed(0)
    m = CrossAttentionModule(4, 1, max_rel=8, kind="axial").eval()
    with torch.no_grad():
        for step in (m.width, m.height):
            step.to_v.weight.copy_(torch.eye(4)[:, :, None, None])
            step.r_v.zero_()
    t, r = torch.randn(1, 4, 5, 6), torch.randn(1, 4, 5, 6)
    with torch.no_grad():
        tn, rn = m.norm_t(t), m.norm_r(r)
        y1, aw = m.width(tn, rn, True)
        y2, ah = m.height(tn, y1, True)
        _, raw = m(t, r, return_attention=True)
    maps = m.to_maps(raw, stride=16)
    M = maps.all_effective()
    assert M.shape == (5, 6, 5, 6)
    assert np.allclose(M.reshape(30, 30).sum(1), 1, atol=1e-5)
    expected = np.einsum("ijkl,ckl->cij", M, rn[0].numpy())
    assert np.allclose(y2[0].numpy(), expected, atol=1e-5)
    assert np.allclose(maps.effective(2, 3), M[2, 3])
    conc = maps.concentration()
    assert conc.shape == (5, 6) and (conc >= 0).all() and (conc <= 1).all()


def test_standard_effective_map_is_the_head_average():
    torch.manual_seed(0)
    m = CrossAttentionModule(8, 2, max_rel=4, kind="standard").eval()
    with torch.no_grad():
        _, raw = m(torch.randn(1, 8, 3, 4), torch.randn(1, 8, 3, 4), return_attention=True)
    maps = m.to_maps(raw, stride=8)
    assert np.allclose(maps.effective(1, 2), raw[0][0, :, 1, 2].mean(0).numpy())
    assert maps.effective(1, 2).sum() == pytest.approx(1.0, abs=1e-5)


def test_one_hot_concentration():
    from napari_colorize.models.maps import AttentionMaps

    full = np.zeros((1, 2, 2, 2, 2), np.float32)
    for i in range(2):
        for j in range(2):
            full[0, i, j, i, j] = 1
    assert np.allclose(AttentionMaps("standard", 1, full=full).concentration(), 1)
    assert np.allclose(AttentionMaps("standard", 1, full=np.full_like(full, 0.25)).concentration(), 0, atol=1e-6)


def test_module_residual_and_gradients():
    torch.manual_seed(0)
    m = CrossAttentionModule(8, 2, max_rel=4)
    t = torch.randn(2, 8, 4, 4, requires_grad=True)
    r = torch.randn(2, 8, 4, 4, requires_grad=True)
    out, _ = m(t, r)
    assert out.shape == t.shape and (out >= 0).all()
    out.sum().backward()
    assert t.grad.abs().sum() > 0 and r.grad.abs().sum() > 0
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)


def test_bad_arguments():
    with pytest.raises(ValueError):
        AxialAttention(10, 3, max_rel=4)
    with pytest.raises(ValueError):
        CrossAttentionModule(8, 2, 4, kind="diagonal")
