"""Operating point and calibration arithmetic on synthetic out-of-fold logits."""

import numpy as np
import pytest

from backend.ml import calibration


def synthetic(n=4000, temperature=2.5, seed=0):
    """Logits whose true P(COVID) is softmax(logits / temperature): an over-confident model."""
    rng = np.random.default_rng(seed)
    margin = rng.normal(0, 3, n)
    positive = rng.random(n) < 1 / (1 + np.exp(-margin / temperature))
    return np.stack([margin / 2, -margin / 2], axis=1), positive


def test_temperature_scaling_recovers_the_temperature_and_lowers_ece():
    logits, positive = synthetic()
    temperature = calibration.fit_temperature(logits, positive)
    assert temperature == pytest.approx(2.5, rel=0.1)
    before = calibration.reliability(calibration.p_covid(logits), positive)[0]
    after = calibration.reliability(calibration.p_covid(logits, temperature), positive)[0]
    assert after < 0.03 < before
    folds = np.arange(len(positive)) % 5
    assert calibration.cross_fitted_ece(logits, positive, folds) < 0.04
    p = calibration.p_covid(logits, temperature)
    assert calibration.p_covid(logits)[np.argsort(p)].tolist() == sorted(calibration.p_covid(logits))  # same order


def test_threshold_is_the_highest_that_keeps_the_sensitivity():
    logits, positive = synthetic()
    p = calibration.p_covid(logits)
    threshold = calibration.threshold_for_sensitivity(p, positive, 0.85)
    assert calibration.at_threshold(p, positive, threshold)["sensitivity"] >= 0.85
    assert calibration.at_threshold(p, positive, np.nextafter(threshold, 1))["sensitivity"] < 0.85
    point = calibration.at_threshold(p, positive, threshold)
    (tp, fn), (fp, tn) = point["confusion_matrix"]["matrix"]
    assert tp + fn == positive.sum() and fp + tn == (~positive).sum()


def test_bootstrap_interval_brackets_the_auc_and_resamples_sources():
    logits, positive = synthetic(600)
    groups = np.arange(600) // 6  # 100 sources of 6 slices
    result = calibration.bootstrap_auc(calibration.p_covid(logits), positive, groups, resamples=300)
    assert result["ci95"][0] < result["roc_auc"] < result["ci95"][1]
    assert 0.02 < result["ci95"][1] - result["ci95"][0] < 0.2
