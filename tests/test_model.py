"""The served classifier: CAM = Grad-CAM up to scale, calibrated probabilities, the threshold, the shared
preprocessing, and the committed weights with their recorded numbers."""

import copy
import io
import json
import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from backend.config import DEFAULT_MODEL_PATH
from backend.imaging import lungfield
from backend.imaging.decode import decode_image
from backend.imaging.marks import neutralise_colour_marks
from backend.ml import calibration, compiled, data, report, resolution
from backend.ml.classifier import (
    LOW_RESOLUTION,
    MIN_LUNG_SIDE,
    NO_LUNG_FIELD,
    NOT_CHEST_CT,
    Classifier,
    not_assessable_reason,
)
from backend.ml.gradcam import grad_cam
from backend.ml.network import CTNet, EfficientNetLite0, Ensemble, fold_batchnorm
from backend.ml.preprocess import INPUT_SIZE, LABELS, prepare, to_input
from backend.ml.report import out_of_fold
from tests.fixtures.data import covid_ct_dir, ct_series, sars_cov_2_ct_dir
from tests.test_reframing import TOLERANCE as REFRAMING_TOLERANCE

WEIGHTS = Path(DEFAULT_MODEL_PATH).parent
METRICS = json.loads((WEIGHTS / "metrics.json").read_text())
CROSSVAL = json.loads((WEIGHTS / "crossval.json").read_text())
SOURCES = {"covid-ct": covid_ct_dir, "sars-cov-2-ct": sars_cov_2_ct_dir}


def folders_of(keys):
    """The data folders that the item keys (`<source>/<label>/<file>`) come from, in order of appearance."""
    return [SOURCES[source]() for source in dict.fromkeys(data.source_of(key) for key in keys)]


def slices(n=3, seed=0):
    """Varied uint8 slices: a bright disc (a 'body') with blobs on a dark background, of different sizes."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in [(512, 512), (300, 420), (150, 120)][:n]:
        gray = rng.normal(20, 5, (h, w))
        cv2.ellipse(gray, (w // 2, h // 2), (int(w * 0.4), int(h * 0.35)), 0, 0, 360, 150, -1)
        yy, xx = np.mgrid[0:h, 0:w]
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        gray += 80 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.01 * h * w))
        out.append(np.clip(gray + rng.normal(0, 10, (h, w)), 0, 255).astype(np.uint8))
    return out


def randomised(network):
    torch.manual_seed(1)
    for module in network.modules():  # non-trivial BatchNorm statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return network.eval()


@pytest.mark.parametrize("weights", ["committed", "random lite0", "random ctnet"])
def test_cam_equals_gradcam_up_to_scale(weights, classifier):
    network = {
        "committed": lambda: classifier.members[0],
        "random lite0": lambda: randomised(EfficientNetLite0()),
        "random ctnet": lambda: randomised(CTNet()),
    }[weights]()
    x = torch.stack([to_input(gray)[0] for gray in slices()])
    with torch.inference_mode():
        _, features = network.forward_with_features(x)
        cams = {k: network.cam(features, k) for k in range(len(LABELS))}
    h, w = features.shape[2:]
    for k in range(len(LABELS)):
        reference = grad_cam(network, x, k)
        assert reference.abs().max() > 0
        # Before ReLU: Grad-CAM = CAM / (h*w), a positive scale.
        torch.testing.assert_close(cams[k] / (h * w), reference, rtol=1e-4, atol=1e-6)


def test_cam_averages_to_the_logit_and_sits_on_the_body(classifier):
    """The CAM is the model's own evidence: its mean plus the bias is the class logit (for an ensemble, the
    members' mean map and mean bias give the mean logit); in the slice's frame it is that map over the
    body box and zero outside."""
    members = classifier.members
    for gray in slices():
        x, (top, bottom, left, right), _ = to_input(gray, **classifier.preprocessing)
        with torch.inference_mode():
            logits, features, _ = classifier.forward_pass(x.unsqueeze(0))
            for k in range(len(LABELS)):
                cam = torch.stack([member.cam(features[:, m], k) for m, member in enumerate(members)]).mean(0)[0]
                bias = torch.stack([member.fc.bias[k] for member in members]).mean()
                assert cam.mean().item() + bias.item() == pytest.approx(logits[0, k].item(), abs=1e-4)
        prediction = classifier.predict(gray)
        frame = prediction.cam
        assert frame.dtype == np.float32 and np.isfinite(frame).all()
        assert frame.shape[0] / frame.shape[1] == pytest.approx(gray.shape[0] / gray.shape[1], rel=0.05)
        s = min(1.0, 112 / max(gray.shape))  # cam_to_slice's default size
        outside = np.ones(frame.shape, bool)
        outside[round(top * s) : round(bottom * s), round(left * s) : round(right * s)] = False
        assert (frame[outside] == 0).all() and frame[~outside].std() > 0


def test_probabilities_are_calibrated_and_the_label_follows_the_threshold(classifier):
    for gray in slices():
        x = to_input(gray, **classifier.preprocessing).input
        with torch.inference_mode():
            logits = classifier.network(x.unsqueeze(0))[0].double()
        prediction = classifier.predict(gray)
        expected = torch.softmax(logits / classifier.temperature, 0).tolist()
        assert [prediction.probabilities[label] for label in LABELS] == pytest.approx(expected, abs=1e-9)
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-9)
        p_covid = prediction.probabilities["COVID"]
        assert prediction.label == ("COVID" if p_covid >= classifier.threshold else "NonCOVID")
        assert prediction.confidence == prediction.probabilities[prediction.label]
        field = prediction.as_json()
        assert field["threshold"] == classifier.threshold and field["label"] == prediction.label
        assert isinstance(field["in_distribution"], bool) and 0.0 <= field["distribution_score"] <= 1.0
        assert field["assessable"] == (field["reason"] is None) == prediction.assessable
        again = classifier.predict(gray.copy())
        assert again.probabilities == prediction.probabilities and np.array_equal(again.cam, prediction.cam)


def test_the_compiled_pass_computes_what_the_modules_do(classifier):
    """Serving runs the network and the input check's branch as one TorchScript module (no GIL between
    operations): the logits, feature maps and input check embeddings must be the modules' own."""
    x = torch.stack([to_input(gray)[0] for gray in slices()])
    check = classifier.input_check
    with torch.inference_mode():
        logits, features, embeddings = classifier.forward_pass(x)
        tapped = classifier.members[0].features[: check.tap](x)
        for m, member in enumerate(classifier.members):
            assert torch.allclose(features[:, m], member.features[check.tap :](tapped), atol=1e-5)
        assert torch.allclose(logits, classifier.network(x), atol=1e-5)
        assert torch.allclose(embeddings, check.probe(tapped).mean(dim=(2, 3)), atol=1e-5)
    plain = Classifier(CTNet().eval(), "t", "1")  # no input check: no embeddings
    with torch.inference_mode():
        logits, features, embeddings = plain.forward_pass(x)
        assert embeddings is None and torch.allclose(logits, plain.network(x), atol=1e-5)


def test_an_ensemble_answers_with_its_members_mean_logit_and_cam(classifier):
    """Members sharing the frozen first layers: the shared layers run once, the logits and the CAM are the
    members' means, and the CAM still averages to the (mean) logit."""
    check = classifier.input_check
    members = [classifier.members[0], fold_batchnorm(randomised(EfficientNetLite0()))]
    members[1].features[: check.tap].load_state_dict(members[0].features[: check.tap].state_dict())
    ensemble = Classifier(Ensemble(members), "t", "1", input_check=check, preprocessing=classifier.preprocessing)
    gray = slices(1)[0]
    x = to_input(gray, **classifier.preprocessing).input
    with torch.inference_mode():
        logits = [member(x[None])[0] for member in members]
        mean_logit = torch.stack(logits).mean(0)
        _, features, _ = ensemble.forward_pass(x[None])
        for k in range(len(LABELS)):
            cam = torch.stack([member.cam(features[:, m], k) for m, member in enumerate(members)]).mean(0)
            bias = torch.stack([member.fc.bias[k] for member in members]).mean()
            assert cam.mean().item() + bias.item() == pytest.approx(mean_logit[k].item(), abs=1e-4)
    prediction = ensemble.predict(gray)
    expected = torch.softmax(mean_logit.double(), 0).tolist()
    assert [prediction.probabilities[label] for label in LABELS] == pytest.approx(expected, abs=1e-6)
    assert prediction.probabilities != classifier.predict(gray).probabilities


def test_moving_the_threshold_moves_the_label(classifier):
    gray = slices(1)[0]
    p_covid = classifier.predict(gray).probabilities["COVID"]

    def at(**settings):
        """The served classifier with other settings (its compiled pass shared: compiling is a second each)."""
        changed = copy.copy(classifier)
        vars(changed).update(settings)
        return changed

    low, high = at(threshold=p_covid - 1e-6), at(threshold=p_covid + 1e-6)
    assert low.predict(gray).label == "COVID" and high.predict(gray).label == "NonCOVID"
    assert low.predict(gray).probabilities == high.predict(gray).probabilities
    # A temperature above 1 pulls the probabilities towards 1/2 without changing their order.
    soft = at(temperature=classifier.temperature * 3)
    assert abs(soft.predict(gray).probabilities["COVID"] - 0.5) < abs(p_covid - 0.5)


def test_to_input_crops_to_the_lungs_or_the_body_and_scales_to_minus_one_one():
    gray = np.zeros((300, 400), np.uint8)
    cv2.rectangle(gray, (100, 50), (299, 249), 200, -1)
    gray[120:180, 150:250] = 40  # dark 'lungs' inside
    x, (top, bottom, left, right), field = to_input(gray, crop="body", intensity="raw")
    assert x.shape == (1, INPUT_SIZE, INPUT_SIZE) and x.dtype == torch.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert 40 <= top <= 50 and 250 <= bottom <= 260 and 90 <= left <= 100 and 300 <= right <= 310
    x, (top, bottom, left, right), _ = to_input(gray)  # 3.0.0: the lungs' box plus 10 %
    assert 110 <= top <= 120 and 180 <= bottom <= 190 and 135 <= left <= 150 and 250 <= right <= 265
    assert x.min() >= -1.0 and x.max() <= 1.0
    blank = np.zeros((50, 60), np.uint8)
    assert to_input(blank).box == to_input(blank, crop="body").box == (0, 50, 0, 60)  # no body: the whole slice
    assert not lungfield.find(blank).assessable and field.assessable


def test_a_small_crop_is_enlarged_smoothly_and_a_large_one_shrunk_by_area():
    """A small figure's lung crop must not reach the network as blocks of repeated pixels (INTER_AREA's enlargement:
    about half the rows of this 60 x 80 px crop), which depend on its size and which no hospital slice has."""
    gray = decode_image(ct_series()[15].read_bytes())
    small = cv2.resize(gray, (96, 96), interpolation=cv2.INTER_AREA)
    x, (top, bottom, left, right), _ = to_input(small)
    assert max(bottom - top, right - left) < INPUT_SIZE / 2
    pixels = x[0].numpy()
    assert not (np.abs(np.diff(pixels, axis=0)).max(axis=1) == 0).any()  # no row repeats the one above
    assert not (np.abs(np.diff(pixels, axis=1)).max(axis=0) == 0).any()  # no column repeats its left neighbour
    pixels, (top, bottom, left, right), _ = prepare(gray)  # a hospital slice: its crop is shrunk, as before
    assert min(bottom - top, right - left) >= INPUT_SIZE
    shrunk = cv2.resize(pixels, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
    assert torch.equal(to_input(gray).input, torch.as_tensor(shrunk).float().div(127.5).sub(1.0)[None])


def _marked_slice():
    gray = np.full((200, 200), 90, np.uint8)
    gray[50:150, 50:150] = 160
    rgb = np.repeat(gray[..., None], 3, axis=2)
    cv2.arrowedLine(rgb, (20, 180), (100, 100), (255, 0, 0), 3)  # a red arrow
    cv2.putText(rgb, "A", (160, 40), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 0), 2)  # a yellow letter
    return gray, rgb


def test_colour_marks_are_painted_over_and_gray_stays():
    gray, rgb = _marked_slice()
    cleaned = neutralise_colour_marks(rgb)
    assert cleaned.shape == gray.shape and cleaned.dtype == np.uint8
    plain = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    marks = rgb.max(axis=2).astype(int) - rgb.min(axis=2) > 40
    assert np.abs(plain[marks].astype(int) - gray[marks]).mean() > 20  # a plain conversion keeps the arrow
    assert np.abs(cleaned[marks].astype(int) - gray[marks]).mean() < 15
    untouched = np.repeat(gray[..., None], 3, axis=2)
    np.testing.assert_array_equal(neutralise_colour_marks(untouched), gray)
    photo = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)  # mostly colour: a picture
    np.testing.assert_array_equal(neutralise_colour_marks(photo), cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_the_decoder_paints_colour_marks_over(fmt):
    gray, rgb = _marked_slice()
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    decoded = decode_image(buffer.getvalue())
    marks = rgb.max(axis=2).astype(int) - rgb.min(axis=2) > 40
    assert decoded.shape == gray.shape
    assert np.abs(decoded[marks].astype(int) - gray[marks]).mean() < 15


def test_committed_weights_are_the_trained_model(classifier):
    assert (classifier.name, classifier.version) == (METRICS["name"], METRICS["version"])
    assert classifier.name == "covid-ct-effnet-lite0" and classifier.labels == LABELS
    assert len(classifier.members) == METRICS["recipe_options"].get("members", 1)
    assert all(isinstance(member, EfficientNetLite0) for member in classifier.members)
    assert classifier.temperature == pytest.approx(METRICS["out_of_fold"]["temperature"])
    assert classifier.threshold == pytest.approx(METRICS["out_of_fold"]["operating_point"]["threshold"])
    assert DEFAULT_MODEL_PATH.stat().st_size < 40 * 1024 * 1024  # five networks in half precision


def test_committed_weights_reproduce_recorded_predictions(classifier):
    recorded = METRICS["reference_predictions"]
    folders = folders_of(recorded)
    assert len(recorded) >= 6 and {key.split("/")[1] for key in recorded} == set(LABELS)
    for key, expected in recorded.items():
        prediction = classifier.predict(data.load_gray(folders, key))
        assert prediction.probabilities["COVID"] == pytest.approx(expected["p_covid"], abs=1e-5), key
        assert prediction.label == expected["label"] and prediction.in_distribution == expected["in_distribution"]


def held_out_nll(logits, positive, temperature):
    """The mean negative log-likelihood of the true labels under softmax(logits / temperature)."""
    p = calibration.p_covid(logits, temperature)
    return -np.mean(np.log(np.where(positive, p, 1 - p)))


def test_operating_point_and_calibration_follow_from_the_out_of_fold_results():
    """threshold, temperature and the card's numbers are recomputed from crossval.json alone: the held-out logits of
    every fold that ran (3.0.0 to 3.3.0: one grouped held-out split, the first of 5 folds)."""
    recorded = METRICS["out_of_fold"]
    files, logits, positive, groups, folds = out_of_fold(CROSSVAL, recorded["recipe"])
    run = CROSSVAL.get("folds_run", CROSSVAL["folds"])
    assert files == [key for key, entry in CROSSVAL["files"].items() if entry["fold"] < run] and CROSSVAL["folds"] >= 3
    assert set(folds) == set(range(run)) and len(files) == recorded["images"]
    for source in recorded.get("per_source", {}):  # every source has held-out slices of both classes
        inside = np.array([data.source_of(key) == source for key in files])
        assert 0 < positive[inside].sum() < inside.sum()
    operating = calibration.operating_point(logits, positive, [data.source_of(key) for key in files])
    assert operating["temperature"] == pytest.approx(recorded["temperature"], rel=1e-4)
    assert operating["threshold"] == pytest.approx(recorded["operating_point"]["threshold"], rel=1e-4)
    p = calibration.p_covid(logits, operating["temperature"])
    at = calibration.at_threshold(p, positive, operating["threshold"])
    assert at["sensitivity"] >= calibration.TARGET_SENSITIVITY
    assert at["specificity"] == pytest.approx(recorded["operating_point"]["specificity"])
    assert calibration.reliability(p, positive)[0] == pytest.approx(recorded["ece_after"])
    assert calibration.reliability(calibration.p_covid(logits), positive)[0] == pytest.approx(recorded["ece_before"])
    # temperature scaling minimises the held-out negative log-likelihood; the binned ECE may move either way (3.3.0)
    assert held_out_nll(logits, positive, operating["temperature"]) < held_out_nll(logits, positive, 1.0)
    assert recorded["ci95"][0] < recorded["roc_auc"] < recorded["ci95"][1]


def test_model_card_quotes_the_recorded_metrics():
    card = (WEIGHTS / "MODEL_CARD.md").read_text()
    assert card.startswith(f"# Model card: {METRICS['name']} {METRICS['version']}\n")
    oof = METRICS["out_of_fold"]
    low, high = oof["ci95"]
    assert f"{oof['roc_auc']:.3f} (95 % CI {low:.3f}-{high:.3f})" in card
    point = oof["operating_point"]
    for title, value in [
        ("Threshold on P(COVID)", point["threshold"]),
        ("Sensitivity", point["sensitivity"]),
        ("Specificity", point["specificity"]),
        ("ECE before", oof["ece_before"]),
        ("ECE after", oof["ece_after"]),
    ]:
        assert re.search(rf"\| {re.escape(title)} \| {value:.3f} \|", card), title
    assert METRICS["command"] in card and all(command in card for command in CROSSVAL["commands"])
    for source, result in oof.get("per_source", {}).items():  # sensitivity and specificity within every source
        point = result["operating_point"]
        assert re.search(
            rf"\| `{re.escape(source)}` \| {point['sensitivity']:.3f} \| {point['specificity']:.3f} \|", card
        ), source
        assert point["sensitivity"] >= calibration.TARGET_SENSITIVITY


def test_cross_validation_folds_are_by_source_and_reproducible():
    items = data.list_images(folders_of(CROSSVAL["files"]))
    assert [key for key, _ in items] == list(CROSSVAL["files"])
    groups = data.source_groups(items)
    folds = data.grouped_folds(items, CROSSVAL["folds"], CROSSVAL["seed"])
    for k, (_, held_out) in enumerate(folds):
        assert all(CROSSVAL["files"][items[i][0]]["fold"] == k for i in held_out)
    fold_of_source = {}
    for group, entry in zip(groups, CROSSVAL["files"].values(), strict=False):
        assert fold_of_source.setdefault(group, entry["fold"]) == entry["fold"]  # one source, one fold


def test_not_chest_ct_comes_before_no_lung_field_before_low_resolution():
    """The input check's verdict is the more basic one: a photo has no lung field either, but is first not CT; and
    a slice without lungs is that, whatever its size."""
    with_lungs, without = (
        lungfield.LungField((0, 1, 0, 1), (0, 1, 0, 1), 0.3, None),
        lungfield.LungField((0, 1, 0, 1), (0, 1, 0, 1), 0.01, None),
    )
    wide, narrow = MIN_LUNG_SIDE, MIN_LUNG_SIDE - 1
    assert not_assessable_reason(True, with_lungs, wide) is None
    assert not_assessable_reason(True, with_lungs, narrow) == LOW_RESOLUTION
    assert not_assessable_reason(True, without, wide) == not_assessable_reason(True, without, narrow) == NO_LUNG_FIELD
    flagged = {not_assessable_reason(False, field, side) for field in (with_lungs, without) for side in (wide, narrow)}
    assert flagged == {NOT_CHEST_CT}


def test_the_resolution_floor_is_the_one_measured_for_the_served_weights(classifier):
    """`MIN_LUNG_SIDE` is resolution.json's floor, measured with these weights: the smallest side from which the mean
    move of P(COVID) away from the full-resolution answer stays within the per-slice re-framing limit."""
    measured = json.loads((WEIGHTS / "resolution.json").read_text())
    assert resolution.LIMIT == REFRAMING_TOLERANCE
    assert measured["model"] == f"{classifier.name} {classifier.version}"
    assert measured["floor"] == MIN_LUNG_SIDE == resolution.floor(measured["pooled"])
    means = {int(side): entry["mean"] for side, entry in measured["pooled"].items()}
    assert all(mean <= resolution.LIMIT for side, mean in means.items() if side >= MIN_LUNG_SIDE)
    assert max(mean for side, mean in means.items() if side < MIN_LUNG_SIDE) > resolution.LIMIT
    assert min(measured["slices"].values()) >= 100


def test_a_real_slice_shrunk_below_the_floor_is_not_judged(classifier):
    """The same real hospital slice: judged at full size, `low_resolution` once its lungs are under the floor."""
    gray = decode_image(ct_series()[15].read_bytes())
    full = classifier.predict(gray)
    assert full.assessable and full.crop_side >= 224
    thumbnail = resolution.shrunk_to(gray, full.crop_side, MIN_LUNG_SIDE - 8)
    small = classifier.predict(thumbnail)
    assert small.crop_side < MIN_LUNG_SIDE and small.reason == LOW_RESOLUTION and not small.assessable
    assert small.as_json()["reason"] == LOW_RESOLUTION and small.label in LABELS
    at_floor = classifier.predict(resolution.shrunk_to(gray, full.crop_side, MIN_LUNG_SIDE + 8))
    assert at_floor.crop_side >= MIN_LUNG_SIDE and at_floor.assessable


def test_the_real_series_is_judged_only_where_it_shows_lung(classifier):
    """A hospital DICOM series (HU through the service's lung window) from the neck to the upper abdomen: its first
    and last slices are not assessed (too little lung, or not chest CT at all), every middle slice is."""
    predictions = [classifier.predict(decode_image(path.read_bytes())) for path in ct_series()]
    assert not any(p.assessable for p in predictions[:2] + predictions[-2:])
    assert all(p.reason in (NO_LUNG_FIELD, NOT_CHEST_CT) for p in predictions[:2] + predictions[-2:])
    middle = predictions[len(predictions) // 5 : len(predictions) - len(predictions) // 5]
    assert all(p.assessable and p.reason is None and p.in_distribution for p in middle)
    assert all(p.as_json()["assessable"] == p.assessable for p in predictions)


def test_the_series_command_answers_a_study_by_the_services_rule():
    """`python -m backend.ml.series` (the card's series numbers) counts only what the studies API counts: assessable
    slices with at least half the lung share of the series' fullest, so a high slice at a lung base does not count."""
    from backend.ml.series import summary

    slices = [(True, 0.9, 0.1), (True, 0.2, 0.4), (True, 0.1, 0.35), (True, 0.3, 0.3), (False, 0.95, 0.02)]
    rows = [
        {
            "file": f"{i}.dcm",
            "assessable": assessable,
            "reason": None if assessable else NO_LUNG_FIELD,
            "p_covid": p,
            "label": "COVID" if p >= 0.4 else "NonCOVID",
            "lung_share": share,
        }
        for i, (assessable, p, share) in enumerate(slices)
    ]
    result = summary(rows, 0.4)
    assert [row["counted"] for row in rows] == [False, True, True, True, False]
    assert result["counted"] == 3 and result["assessable"] == 4 and result["assessable_called_covid"] == 1
    assert result["study"]["score"] == pytest.approx(0.2) and result["study"]["label"] == "NonCOVID"


def test_the_model_card_quotes_the_cross_source_results():
    """The headline numbers: each source scored by networks trained only on the other one."""
    card = (WEIGHTS / "MODEL_CARD.md").read_text()
    cross = METRICS["cross_source"]
    assert METRICS["recipe"] in cross
    for name, summary in cross.items():
        for source, result in summary["per_source"].items():
            low, high = result["ci95"]
            assert f"{result['roc_auc']:.3f} ({low:.3f}-{high:.3f})" in card, (name, source)


def test_the_model_card_quotes_all_five_folds_of_the_grouped_cross_validation():
    """Round 15 (evaluation only): the shipped recipe on all five grouped folds of the union, pooled and per source."""
    card = (WEIGHTS / "MODEL_CARD.md").read_text()
    union = json.loads((WEIGHTS / "union-5fold.json").read_text())
    summary = report.candidate_summary(union, METRICS["recipe"])
    assert summary["folds_done"] == union["folds"] == 5 and summary["images"] == len(union["files"])
    for result in (summary, *summary["per_source"].values()):
        low, high = result["ci95"]
        assert f"{result['roc_auc']:.3f} ({low:.3f}-{high:.3f})" in card


def test_the_compiled_pass_is_kept_and_loaded_by_the_next_start_with_the_same_answers(classifier, tmp_path, caplog):
    """A process keeps the compiled pass (MODEL_CACHE_DIR); the next one loads it instead of compiling, and answers
    exactly as a classifier compiled afresh. A file cut short is made again; a folder that cannot be written to
    only costs the compile."""
    caplog.set_level(logging.INFO, logger="backend.ml.compiled")

    def answers(loaded):
        return [(p.probabilities, p.cam.tobytes(), p.distribution_score) for p in loaded.predict_batch(slices())]

    first = Classifier.load(DEFAULT_MODEL_PATH, tmp_path / "cache")
    [kept] = (tmp_path / "cache").iterdir()
    assert kept.name == f"forward-{compiled.digest(DEFAULT_MODEL_PATH)}.pt" and "compiled model kept" in caplog.text
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]  # none kept yet: no alarm
    caplog.clear()
    second = Classifier.load(DEFAULT_MODEL_PATH, tmp_path / "cache")
    assert "compiled model loaded from" in caplog.text and "compiled model kept" not in caplog.text
    assert answers(first) == answers(second) == answers(classifier)

    kept.write_bytes(kept.read_bytes()[:1000])  # cut short
    caplog.clear()
    again = Classifier.load(DEFAULT_MODEL_PATH, tmp_path / "cache")
    assert "does not load" in caplog.text and "compiled model kept" in caplog.text
    assert answers(again) == answers(classifier) and kept.stat().st_size > 1_000_000

    (tmp_path / "a file").write_text("")
    caplog.clear()
    unwritable = Classifier.load(DEFAULT_MODEL_PATH, tmp_path / "a file" / "cache")
    assert "cannot keep the compiled model" in caplog.text and answers(unwritable) == answers(classifier)


def test_the_kept_pass_is_named_by_the_weights_it_was_made_from(tmp_path):
    other = tmp_path / "other.pt"
    other.write_bytes(Path(DEFAULT_MODEL_PATH).read_bytes() + b"\0")
    assert compiled.digest(other) != compiled.digest(DEFAULT_MODEL_PATH) == compiled.digest(DEFAULT_MODEL_PATH)
