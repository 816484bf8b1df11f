"""Reference suggestions: rank candidate colour images for a grey target."""

import numpy as np
import pytest
from PIL import Image

from napari_colorize.suggest import FeatureCache, suggest_references


@pytest.fixture(scope="module")
def photos():
    from skimage import data

    return {"astronaut": data.astronaut(), "chelsea": data.chelsea(), "coffee": data.coffee(),
            "rocket": data.rocket(), "motorcycle": data.stereo_motorcycle()[1]}


def _grey(rgb):
    return np.round(rgb[..., :3].astype(np.float32) @ [0.299, 0.587, 0.114]).astype(np.uint8)


def test_the_photo_itself_is_suggested_first(photos):
    """The target is the grey left half of a photo; the candidates hold a colour crop of the same
    scene among other photos: it must come first."""
    names = list(photos)
    target = _grey(photos["chelsea"][:, :300])
    cands = [photos[n] if n != "chelsea" else photos[n][:, 150:] for n in names]
    got = suggest_references(target, cands, top=3, names=names, cache=False)
    assert got[0].name == "chelsea" and got[0].index == names.index("chelsea")
    assert len(got) == 3 and got[0].score >= got[1].score >= got[2].score


def test_a_folder_is_ranked_with_a_feature_cache_and_bad_files_named(photos, tmp_path):
    folder = tmp_path / "refs"
    folder.mkdir()
    for n, im in photos.items():
        Image.fromarray(im[..., :3]).save(folder / f"{n}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.txt").write_text("not an image")
    cache = FeatureCache(tmp_path / "cache")
    errors = []
    target = _grey(photos["astronaut"][::2, ::2])
    first = suggest_references(target, folder, top=2, cache=cache, errors=errors)
    assert first[0].name.endswith("astronaut.png")
    assert len(errors) == 1 and "broken.png" in errors[0]
    assert len(list((tmp_path / "cache").glob("*.npz"))) == len(photos)  # the bad file is not cached
    again = suggest_references(target, folder, top=2, cache=cache)  # from the cache: the same ranking
    assert [s.name for s in again] == [s.name for s in first]
    assert np.isclose(again[0].score, first[0].score, atol=1e-3)


def test_nothing_to_rank(tmp_path):
    with pytest.raises(ValueError, match="no candidate"):
        suggest_references(np.zeros((32, 32)), tmp_path, cache=False)


def test_nearly_grey_and_uint16_candidates_are_ranked_not_refused():
    """A candidate with faint colour (a foggy photo that colorize takes as a reference) or 16-bit data is a
    valid image to rank."""
    from skimage import data

    rgb = data.coffee()
    foggy = (0.9 * rgb.mean(-1, keepdims=True) + 0.1 * rgb).astype(np.uint8)
    deep = rgb.astype(np.uint16) * 257
    got = suggest_references(_grey(rgb), [foggy, deep, data.rocket()], top=3, cache=False)
    assert {s.index for s in got} == {0, 1, 2} and got[-1].index == 2


def test_memory_does_not_grow_with_the_number_of_candidates(monkeypatch, tmp_path):
    """Only the pooled features of every candidate are kept, the mid-level ones of the nearest few:
    the peak memory of ranking 200 candidates is that of about `shortlist` of them (the backbone is
    replaced by a stand-in of the same output sizes; no timing)."""
    import tracemalloc

    import napari_colorize.models.backbones as backbones
    from napari_colorize import suggest

    mid_bytes = 112 * 23 * 23 * 4  # (about the 0.23 MB of a candidate's mid-level features at 224 px)

    def features(images, backbone=None, **kw):
        seed = int(np.asarray(images[0]).sum()) % 2**32
        r = np.random.default_rng(seed)
        return r.random((1, 320), dtype=np.float32), r.random((1, 112, 23, 23), dtype=np.float32)

    monkeypatch.setattr(backbones, "build_backbone", lambda name: None)
    monkeypatch.setattr(suggest, "image_features", features)
    rng = np.random.default_rng(0)
    target = rng.random((8, 8))
    peaks = {}
    for n in (50, 200):
        cands = [rng.random((8, 8, 3)) for _ in range(n)]
        tracemalloc.start()
        ranked = suggest.suggest_references(target, cands, top=5, shortlist=20, cache=False)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(ranked) == 5
    assert peaks[200] < 40 * mid_bytes, peaks  # every candidate's features would be 200 x 0.24 MB = 47 MB
    assert peaks[200] - peaks[50] < 10 * mid_bytes, peaks  # 150 more candidates: no more than 2.4 MB more


def test_the_ranking_is_the_one_of_every_candidate_kept(monkeypatch):
    """Candidates shortlisted but not among the nearest held are fetched again: the same ranking as
    keeping everything (checked against the local score of every candidate, computed here)."""
    import napari_colorize.models.backbones as backbones
    from napari_colorize import suggest

    def features(images, backbone=None, **kw):
        r = np.random.default_rng(int(np.asarray(images[0]).sum() * 1000) % 2**32)
        return r.random((1, 320), dtype=np.float32), r.random((1, 16, 4, 4), dtype=np.float32)

    monkeypatch.setattr(backbones, "build_backbone", lambda name: None)
    monkeypatch.setattr(suggest, "image_features", features)
    rng = np.random.default_rng(1)
    target = rng.random((8, 8))
    cands = [rng.random((8, 8, 3)) for _ in range(60)]
    ranked = suggest.suggest_references(target, cands, top=4, shortlist=10, cache=False)
    tg, tm = features([target])
    G = np.concatenate([features([c])[0] for c in cands])
    z = suggest.pca(np.concatenate([tg, G]), dims=128, fit=G)
    order = np.argsort(((z[1:] - z[:1]) ** 2).sum(-1))[:10]
    want = sorted(order, key=lambda j: -suggest.local_score(tm[0], features([cands[j]])[1][0]))[:4]
    assert [s.index for s in ranked] == [int(j) for j in want]


def test_candidates_that_cannot_be_references_are_skipped_with_their_reason(photos, tmp_path):
    """A grey image, grey RGB, RGB too faint for colorize and a stack are not ranked (a copy of the grey
    target came first with score 1.0), each named once with its reason; a bad file's path is not doubled."""
    import tifffile

    rgb = photos["coffee"]
    grey = _grey(rgb)
    folder = tmp_path / "cand"
    folder.mkdir()
    Image.fromarray(rgb).save(folder / "a_colour.png")
    Image.fromarray(grey).save(folder / "b_grey.png")
    Image.fromarray(np.repeat(grey[..., None], 3, -1)).save(folder / "c_grey_rgb.png")
    Image.fromarray((0.97 * rgb.mean(-1, keepdims=True) + 0.03 * rgb).astype(np.uint8)).save(folder / "d_faint.png")
    tifffile.imwrite(folder / "e_stack.tif", np.stack([grey[:64, :64]] * 5))
    (folder / "f_bad.jpg").write_bytes(b"not an image")
    errors = []
    got = suggest_references(grey, folder, top=5, cache=False, errors=errors)
    assert [s.name for s in got] == [str(folder / "a_colour.png")]
    why = dict(e.split(": ", 1) for e in errors)
    assert sorted(why) == [str(folder / n) for n in ("b_grey.png", "c_grey_rgb.png", "d_faint.png", "e_stack.tif",
                                                       "f_bad.jpg")]
    assert "no colour" in why[str(folder / "b_grey.png")] and "no colour" in why[str(folder / "c_grey_rgb.png")]
    assert "stack" in why[str(folder / "e_stack.tif")]
    bad = why[str(folder / "f_bad.jpg")]
    assert not bad.startswith(str(folder)) and "f_bad.jpg" not in bad  # (the path once, not twice)
    errors = []  # array candidates (napari layers) alike
    got = suggest_references(grey, [grey, rgb, np.stack([grey] * 4)], names=["g", "c", "s"], cache=False, errors=errors)
    assert [s.name for s in got] == ["c"] and [e.split(":")[0] for e in errors] == ["g", "s"]


@pytest.mark.parametrize("target", [np.zeros(40), np.zeros((5, 40, 40)), np.zeros((2, 40, 40, 3))])
def test_a_stack_or_1d_target_is_refused(target, photos):
    with pytest.raises(ValueError, match="one 2-D image"):
        suggest_references(target, [photos["coffee"]], cache=False)
