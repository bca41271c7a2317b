"""Several sources: listing, grouping by paper or patient (the folds' unit), grouped and cross-source folds,
and the training augmentation."""

import cv2
import numpy as np
import pytest

from backend.ml import data
from backend.ml.augment import augment, augment_slice, shrink
from backend.ml.data import grouped_folds, source_folds, source_groups


def test_source_groups_follow_papers_and_patients():
    items = [
        (f"covid-ct/COVID/{n}", "COVID")
        for n in (
            "2020.02.22.20024927-p18-66%0.png",
            "2020.02.22.20024927-p19-68%3.png",
            "2020.03.12.20027185-p8-216.png",
        )
    ]
    items += [
        (f"covid-ct/NonCOVID/{n}", "NonCOVID")
        for n in ("5%0.jpg", "5%7.jpg", "6%0.jpg", "575.png", "580.png", "1093.png")
    ]
    g = source_groups(items)
    assert g[0] == g[1] != g[2]  # one paper, two figures
    assert g[3] == g[4] != g[5]  # one figure, two crops
    assert g[6] == g[7] != g[8]  # neighbouring slice numbers
    assert len(set(g)) == 6


def test_sars_cov_2_ct_groups_are_blocks_of_neighbouring_numbers_per_class():
    """No patient ids: blocks of data.BLOCK consecutive file numbers stand for a few patients each."""
    items = [(f"sars-cov-2-ct/COVID/Covid_{n}.png", "COVID") for n in (1, 2, 49, 50, 51, 1250)]
    items += [(f"sars-cov-2-ct/NonCOVID/Non-Covid_{n}.png", "NonCOVID") for n in (1, 2)]
    g = source_groups(items)
    assert g[0] == g[1] == g[2] != g[3] == g[4] != g[5]
    assert g[6] == g[7] != g[0]  # the same numbers in the other class are other patients
    assert all(group.startswith("sars-cov-2-ct:") for group in g)


def test_items_know_their_source_and_load_from_their_folder(tmp_path):
    for source, name in (("a", "x.png"), ("b", "x.png")):
        for label in ("COVID", "NonCOVID"):
            (tmp_path / source / label).mkdir(parents=True, exist_ok=True)
            gray = np.full((40, 50), 100 if source == "a" else 200, np.uint8)
            gray[10:30, 10:40] = 50  # not blank: the decoder refuses one value everywhere
            cv2.imwrite(str(tmp_path / source / label / name), gray)
    folders = [tmp_path / "a", tmp_path / "b"]
    items = data.list_images(folders)
    assert [key for key, _ in items] == ["a/COVID/x.png", "a/NonCOVID/x.png", "b/COVID/x.png", "b/NonCOVID/x.png"]
    assert [data.source_of(key) for key, _ in items] == ["a", "a", "b", "b"]
    assert data.load_gray(folders, "b/COVID/x.png").max() == 200
    with pytest.raises(SystemExit):
        data.list_images([tmp_path / "a", tmp_path / "a"])  # two sources of one name


def test_augment_is_seeded_and_keeps_uint8_2d():
    gray = np.random.default_rng(0).integers(0, 256, (300, 500), dtype=np.uint8)
    for perturb in (augment, augment_slice):
        a = perturb(gray, np.random.default_rng(1))
        b = perturb(gray, np.random.default_rng(1))
        c = perturb(gray, np.random.default_rng(2))
        assert a.dtype == np.uint8 and a.ndim == 2
        np.testing.assert_array_equal(a, b)
        assert a.shape != c.shape or not np.array_equal(a, c)
    assert shrink(np.zeros((1600, 800), np.uint8)).shape == (448, 224)


def test_grouped_folds_cover_every_item_and_never_share_a_source():
    items = [(f"covid-ct/COVID/2020.0{k}.x-p1-{i}.png", "COVID") for k in range(6) for i in range(3)]
    items += [(f"covid-ct/NonCOVID/{100 * k + i}.png", "NonCOVID") for k in range(6) for i in range(3)]
    items += [
        (f"sars-cov-2-ct/{label}/{prefix}_{n}.png", label)
        for label, prefix in (("COVID", "Covid"), ("NonCOVID", "Non-Covid"))
        for n in range(1, 301, 10)
    ]
    groups = source_groups(items)
    folds = grouped_folds(items, 3, 0)
    assert len(folds) == 3
    assert sorted(i for _, te in folds for i in te) == list(range(len(items)))
    for tr, te in folds:
        assert not {groups[i] for i in tr} & {groups[i] for i in te}
        assert {data.source_of(items[i][0]) for i in te} == {"covid-ct", "sars-cov-2-ct"}  # stratified by source


def test_source_folds_hold_out_one_source_each():
    items = [("a/COVID/1.png", "COVID"), ("b/COVID/1.png", "COVID"), ("a/NonCOVID/2.png", "NonCOVID")]
    assert [(list(tr), list(te)) for tr, te in source_folds(items)] == [([1], [0, 2]), ([0, 2], [1])]
