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
