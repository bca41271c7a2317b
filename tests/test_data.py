"""Source grouping (the folds' unit) and the training augmentation."""
import numpy as np

from backend.ml.augment import augment, shrink
from backend.ml.data import grouped_folds, source_groups


def test_source_groups_follow_papers_and_patients():
    items = [(f"COVID/{n}", "COVID") for n in (
        "2020.02.22.20024927-p18-66%0.png", "2020.02.22.20024927-p19-68%3.png", "2020.03.12.20027185-p8-216.png")]
    items += [(f"NonCOVID/{n}", "NonCOVID") for n in ("5%0.jpg", "5%7.jpg", "6%0.jpg", "575.png", "580.png", "1093.png")]
    g = source_groups(items)
    assert g[0] == g[1] != g[2]  # one paper, two figures
    assert g[3] == g[4] != g[5]  # one figure, two crops
    assert g[6] == g[7] != g[8]  # neighbouring slice numbers
    assert len(set(g)) == 6


def test_augment_is_seeded_and_keeps_uint8_2d():
    gray = np.random.default_rng(0).integers(0, 256, (300, 500), dtype=np.uint8)
    a = augment(gray, np.random.default_rng(1))
    b = augment(gray, np.random.default_rng(1))
    c = augment(gray, np.random.default_rng(2))
    assert a.dtype == np.uint8 and a.ndim == 2
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)
    assert shrink(np.zeros((1600, 800), np.uint8)).shape == (448, 224)


def test_grouped_folds_cover_every_item_and_never_share_a_source():
    items = [(f"COVID/2020.0{k}.x-p1-{i}.png", "COVID") for k in range(6) for i in range(3)]
    items += [(f"NonCOVID/{100 * k + i}.png", "NonCOVID") for k in range(6) for i in range(3)]
    groups = source_groups(items)
    folds = grouped_folds(items, 3, 0)
    assert len(folds) == 3
    assert sorted(i for _, te in folds for i in te) == list(range(len(items)))
    for tr, te in folds:
        assert not {groups[i] for i in tr} & {groups[i] for i in te}
