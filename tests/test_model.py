"""The served classifier: CAM equals Grad-CAM up to scale, shapes, ranges, determinism, committed weights."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.config import DEFAULT_MODEL_PATH
from backend.ml import data
from backend.ml.classifier import Classifier
from backend.ml.gradcam import grad_cam
from backend.ml.metrics import binary_metrics, score
from backend.ml.network import CTNet
from backend.ml.preprocess import INPUT_SIZE, LABELS, to_input
from tests.fixtures.data import covid_ct_dir

WEIGHTS = Path(DEFAULT_MODEL_PATH).parent


@pytest.fixture(scope="module")
def classifier():
    torch.set_num_threads(2)
    return Classifier.load(DEFAULT_MODEL_PATH)


def slices(n=3, seed=0):
    """Varied uint8 slices: smooth blobs on noise, of different sizes and aspect ratios."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in [(512, 512), (300, 420), (150, 120)][:n]:
        yy, xx = np.mgrid[0:h, 0:w]
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        blob = 200 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.02 * h * w))
        out.append(np.clip(blob + rng.normal(40, 20, (h, w)), 0, 255).astype(np.uint8))
    return out


@pytest.mark.parametrize("weights", ["committed", "random"])
def test_cam_equals_gradcam_up_to_scale(weights, classifier):
    if weights == "committed":
        network = classifier.network
    else:
        torch.manual_seed(1)
        network = CTNet().eval()
        for module in network.modules():  # non-trivial BatchNorm statistics
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    x = torch.stack([to_input(gray) for gray in slices()])
    with torch.inference_mode():
        _, features = network.forward_with_features(x)
        cams = {k: network.cam(features, k) for k in range(len(LABELS))}
    h, w = features.shape[2:]
    for k in range(len(LABELS)):
        reference = grad_cam(network, x, k)
        assert reference.abs().max() > 0
        # Before ReLU: Grad-CAM = CAM / (h*w), a positive scale.
        torch.testing.assert_close(cams[k] / (h * w), reference, rtol=1e-4, atol=1e-7)
        # After ReLU and normalisation, the maps are the same.
        for cam, ref in zip(cams[k].relu(), reference.relu()):
            torch.testing.assert_close(cam / cam.max(), ref / ref.max(), rtol=1e-4, atol=1e-5)


def test_cam_averages_to_the_logit(classifier):
    """The CAM is the model's own evidence: its mean plus the bias is the predicted class's logit."""
    network = classifier.network
    for gray in slices():
        prediction = classifier.predict(gray)
        index = LABELS.index(prediction.label)
        with torch.inference_mode():
            logits = network(to_input(gray).unsqueeze(0))[0]
        assert prediction.cam.mean() + network.fc.bias[index].item() == pytest.approx(logits[index].item(), abs=1e-4)
        assert torch.softmax(logits.double(), 0)[index].item() == pytest.approx(prediction.probabilities[prediction.label])


def test_predict_shapes_ranges_and_determinism(classifier):
    for gray in slices():
        first, second = classifier.predict(gray), classifier.predict(gray.copy())
        assert first.label in LABELS and set(first.probabilities) == set(LABELS)
        assert sum(first.probabilities.values()) == pytest.approx(1.0, abs=1e-9)
        assert all(0.0 <= p <= 1.0 for p in first.probabilities.values())
        assert first.label == max(first.probabilities, key=first.probabilities.get)
        assert first.cam.dtype == np.float32 and first.cam.shape == (INPUT_SIZE // 16, INPUT_SIZE // 16)
        assert np.isfinite(first.cam).all()
        assert first.label == second.label and first.probabilities == second.probabilities
        np.testing.assert_array_equal(first.cam, second.cam)


def test_to_input_is_normalised_whole_slice():
    gray = np.zeros((100, 300), np.uint8)
    gray[:, 200:] = 255
    x = to_input(gray)
    assert x.shape == (1, INPUT_SIZE, INPUT_SIZE) and x.dtype == torch.float32
    assert x.min() == -1.0 and x.max() == 1.0
    assert (x[0, :, -1] == 1.0).all() and (x[0, :, 0] == -1.0).all()  # no crop: the right third stays


def test_committed_weights_are_the_trained_model(classifier):
    recorded = json.loads((WEIGHTS / "metrics.json").read_text())
    assert classifier.name == recorded["name"] == "ctnet-covid"
    assert classifier.version == recorded["version"]
    assert classifier.labels == LABELS
    assert DEFAULT_MODEL_PATH.stat().st_size < 5 * 1024 * 1024


def test_committed_weights_reproduce_recorded_validation(classifier):
    folder = covid_ct_dir()
    metrics = json.loads((WEIGHTS / "metrics.json").read_text())
    items = data.read_split(WEIGHTS / "split.json")
    assert [rel for rel, _ in items] == list(metrics["validation_p_covid"])
    predictions = score(classifier, folder, items)
    for rel, p in predictions.items():
        assert p == pytest.approx(metrics["validation_p_covid"][rel], abs=1e-5), rel
    again = binary_metrics([label for _, label in items], list(predictions.values()))
    recorded = metrics["validation"]
    assert again["confusion_matrix"] == recorded["confusion_matrix"]
    for key in ("roc_auc", "accuracy", "sensitivity", "specificity", "f1"):
        assert again[key] == pytest.approx(recorded[key], abs=1e-6), key


def test_model_card_quotes_the_recorded_metrics():
    card = (WEIGHTS / "MODEL_CARD.md").read_text()
    metrics = json.loads((WEIGHTS / "metrics.json").read_text())
    assert card.startswith(f"# Model card: {metrics['name']} {metrics['version']}\n")
    recorded = metrics["validation"]
    for key, title in [("roc_auc", "ROC AUC"), ("accuracy", "Accuracy"), ("sensitivity", "Sensitivity"),
                       ("specificity", "Specificity"), ("f1", "F1")]:
        assert re.search(rf"\| {title} \| {recorded[key]:.3f} \|", card), title
    assert metrics_command() in card


def metrics_command():
    return json.loads((WEIGHTS / "metrics.json").read_text())["command"]


def test_recorded_split_is_by_source_and_reproducible():
    folder = covid_ct_dir()
    train, val = data.read_split(WEIGHTS / "split.json", "train"), data.read_split(WEIGHTS / "split.json")
    recorded = json.loads((WEIGHTS / "split.json").read_text())
    assert (train, val) == data.split_by_source(data.list_images(folder), recorded["seed"], recorded["folds"])
    sources = dict(zip([r for r, _ in train + val], data.source_groups(train + val)))
    assert not {sources[r] for r, _ in train} & {sources[r] for r, _ in val}
    assert 0.15 < len(val) / (len(train) + len(val)) < 0.25
    assert {label for _, label in val} == set(LABELS)
