import csv

import numpy as np
import pytest

from napari_colorize.compare import COLUMNS, compare, write_csv


def test_compare_scores_every_model(small_pair, exemplar_random, tmp_path):
    grey, ref, truth = small_pair
    rows, images = compare(["welsh", "reinhard", exemplar_random], grey, ref, truth=truth)
    assert [r["model"] for r in rows] == ["welsh", "reinhard", "exemplar"]
    for r in rows:
        assert 0 <= r["HIS vs reference"] <= 1 and 0 < r["SSIM"] <= 1 and r["PSNR dB"] > 5
    assert images["welsh"].shape == grey.shape + (3,)
    p = write_csv(rows, tmp_path / "t.csv")
    with open(p) as fh:
        got = list(csv.DictReader(fh))
    assert list(got[0]) == COLUMNS and len(got) == 3


def test_truth_of_the_wrong_size(small_pair):
    grey, ref, truth = small_pair
    with pytest.raises(ValueError, match="ground truth"):
        compare(["welsh"], grey, ref, truth=truth[:10])
    rows, _ = compare(["welsh"], grey, ref)
    assert np.isnan(rows[0]["SSIM"])


def test_truth_of_any_rgb_value_range_scores_the_same(small_pair):
    """A uint16 or float 0..255 ground truth is read by its value range, not taken as [0, 1] (SSIM 0, -90 dB)."""
    import warnings

    from napari_colorize import metrics

    grey, ref, truth = small_pair
    rows, _ = compare(["reinhard"], grey, ref, truth=truth)
    for t in (truth.astype(np.uint16) * 257, truth.astype(np.float32)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got, _ = compare(["reinhard"], grey, ref, truth=t)
        assert got[0]["SSIM"] == pytest.approx(rows[0]["SSIM"], abs=1e-6)
        assert got[0]["PSNR dB"] == pytest.approx(rows[0]["PSNR dB"], abs=1e-4)
    assert rows[0]["SSIM"] > 0.5 and rows[0]["PSNR dB"] > 10
    assert metrics.ssim(truth.astype(np.uint16) * 257, truth) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="ground truth"):
        compare(["reinhard"], grey, ref, truth=truth.astype(np.float32) - 100)


def test_small_image_has_no_ssim_and_a_stack_is_refused_before_any_model(small_pair):
    grey, ref, truth = small_pair
    rows, _ = compare(["reinhard"], grey[:6, :6], ref, truth=truth[:6, :6])
    assert np.isnan(rows[0]["SSIM"]) and np.isfinite(rows[0]["PSNR dB"])
    with pytest.raises(ValueError, match="compare works on one 2-D image"):  # not the unknown model's error
        compare(["no-such-model"], np.stack([grey, grey]), ref)
    with pytest.raises(ValueError, match="compare works on one 2-D image"):
        compare(["no-such-model"], grey[0], ref)


def test_write_csv_replaces_a_file_only_when_complete(tmp_path):
    """A row that cannot be written (a column the table does not have) fails the export: the file that was there
    stays as it was, and no partial file is left beside it."""
    from napari_colorize.compare import COLUMNS, write_csv

    f = tmp_path / "scores.csv"
    f.write_text("mine\n")
    good = {k: 0.5 if k != "model" else "welsh" for k in COLUMNS}
    with pytest.raises(ValueError):
        write_csv([good, {**good, "not a column": 1}], f)
    assert f.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]
    write_csv([good], f)
    assert f.read_text().splitlines()[1].startswith("welsh")
