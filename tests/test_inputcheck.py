"""The input check: images unlike chest CT are flagged, real chest CT slices pass, and the answer says so."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.analysis.findings import NOT_CT, describe
from backend.config import DEFAULT_MODEL_PATH
from backend.ml import data, nonct
from backend.ml.inputcheck import PROBE_END, InputCheck, knn_distances
from tests.test_model import CROSSVAL, folders_of

WEIGHTS = Path(DEFAULT_MODEL_PATH).parent
METRICS = json.loads((WEIGHTS / "metrics.json").read_text())


def test_non_ct_images_are_flagged(classifier):
    """scikit-image's pictures, pydicom's MR, ultrasound and radiographs, generated images: at least 90 %
    flagged, or refused by the decoder (the flat picture is blank) before the model sees them."""
    results = {name: nonct.screen(classifier, content) for name, content in nonct.images().items()}
    assert len(results) >= 40
    flagged = [name for name, (in_distribution, _) in results.items() if not in_distribution]
    assert len(flagged) / len(results) >= 0.9, sorted(set(results) - set(flagged))
    assert len(flagged) / len(results) == pytest.approx(METRICS["input_check"]["flagged_non_ct"])
    for name in flagged:  # further than the limit: no more held-out CT slices are further than over the limit
        assert results[name][1] <= METRICS["input_check"]["flagged_out_of_fold_ct"] + 1e-12


def test_real_chest_ct_passes(classifier):
    """Every source the model was trained on: figure crops and hospital screenshots alike."""
    for folder in folders_of(CROSSVAL["files"]):
        items = data.list_images([folder])
        items = items[:: len(items) // 30]  # about 30 slices of both classes
        passed = [classifier.predict(data.load_gray([folder], key)).in_distribution for key, _ in items]
        assert np.mean(passed) >= 0.95, folder


def test_held_out_ct_rate_is_recorded_from_the_limit(classifier):
    """At most 2 % of real CT slices, each measured against the slices of the other folds, are over the served limit."""
    check = classifier.input_check
    assert len(check.held_out) == len(check.reference) == len(data.list_images(folders_of(CROSSVAL["files"])))
    rate = float((check.held_out > check.limit).mean())
    assert rate == pytest.approx(METRICS["input_check"]["flagged_out_of_fold_ct"]) and rate <= 0.02


def test_the_check_branches_off_layers_the_classifier_kept_at_their_imagenet_values(classifier):
    """The probe reads the served network's features[:tap]: those layers were frozen in training."""
    assert 0 < classifier.input_check.tap <= METRICS["recipe_options"]["freeze"]
    assert classifier.input_check.reference.shape[1] == 112  # stage 5's channels


def test_knn_distance_and_score():
    reference = torch.eye(4)[:3].repeat(2, 1)  # each of three directions twice
    check = InputCheck(torch.nn.Sequential(), PROBE_END, reference, limit=0.5, held_out_distances=[0.1, 0.2, 0.3, 0.4])
    assert knn_distances(reference, torch.eye(4)[:1], k=2)[0] == pytest.approx(0.0, abs=1e-6)
    assert knn_distances(reference, torch.eye(4)[3:], k=2)[0] == pytest.approx(np.sqrt(2), abs=1e-6)
    assert check(torch.eye(4)[3]) == (False, 0.0)  # unlike every reference: further than every held-out slice
    assert check(torch.tensor([1.0, 0.0, 0.0, 0.0]))[0] is False  # its 5th neighbour is another direction
    restored = InputCheck.from_state(check.state())
    assert restored.limit == check.limit and np.array_equal(restored.held_out, check.held_out)


def test_recommendations_say_when_the_input_is_not_chest_ct():
    body = np.ones((10, 10), bool)
    activation = np.ones((10, 10), np.float32)
    probabilities = {"COVID": 0.9, "NonCOVID": 0.1}
    findings, advice = describe("COVID", 0.9, probabilities, activation, body, body, 0.3, in_distribution=False)
    assert advice[0] == NOT_CT and "RT-PCR" not in " ".join(advice)
    assert findings[0].startswith("The model rates this slice COVID") and NOT_CT in findings
    _, usual = describe("COVID", 0.9, probabilities, activation, body, body, 0.3, in_distribution=True)
    assert NOT_CT not in usual and "RT-PCR" in usual[0]
