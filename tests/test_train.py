"""Training smoke test: cross-validation (grouped and across sources) and the final training on small generated
slices of two sources, deterministic, with loadable weights that carry their preprocessing, threshold,
temperature and input check."""

import copy
import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from backend.ml import calibration, compiled, crossval, data, nonct, preprocess, train
from backend.ml import network as nets
from backend.ml.classifier import Classifier
from backend.ml.data import load_gray, source_groups
from backend.ml.network import Ensemble
from backend.ml.preprocess import prepare, resize

pytestmark = pytest.mark.slow  # trains
THREADS = str(torch.get_num_threads())  # this worker's share of the cores (tests/conftest.py)


@pytest.fixture(autouse=True)
def small_inputs(monkeypatch):
    """The whole pipeline at 64 px instead of 224 (views, frozen layers, training, the served pass, the input check):
    these tests check what the pipeline writes and reproduces, not the network's size, and the frozen layers' output of
    every cached view was most of their time. The served 224 px pass is tested with the real weights (test_model)."""
    for module in (preprocess, train, compiled):
        monkeypatch.setattr(module, "INPUT_SIZE", 64)
    monkeypatch.setattr(calibration, "RESAMPLES", 20)  # the AUC intervals: 2,000 sklearn AUCs each took the rest
    every = nonct.images  # the input check's non-CT rates (not checked here): 4 of the 45 pictures, not all
    monkeypatch.setattr(nonct, "images", lambda: dict(list(every().items())[::12]))


def make_folder(root, seed=0):
    """12 COVID slices from 6 'papers' (a bright blob in the lungs) and 12 NonCOVID from 6 'patients' (none): a body
    with two dark lungs, so the lung field is found."""
    rng = np.random.default_rng(seed)
    for label in ("COVID", "NonCOVID"):
        (root / label).mkdir(parents=True)
        for source in range(6):
            for k in range(2):
                gray = rng.normal(30, 5, (96, 128))
                cv2.ellipse(gray, (64, 48), (56, 40), 0, 0, 360, 200, -1)
                for x in (40, 88):
                    cv2.ellipse(gray, (x, 48), (18, 28), 0, 0, 360, 60, -1)
                if label == "COVID":
                    cv2.circle(gray, (int(rng.choice([40, 88])), int(rng.integers(36, 60))), 8, 150, -1)
                name = f"2020.0{source}.paper-p1-{k}.png" if label == "COVID" else f"{100 * source + k}.png"
                cv2.imwrite(
                    str(root / label / name), np.clip(gray + rng.normal(0, 6, gray.shape), 0, 255).astype(np.uint8)
                )
    return root


def run_crossval(folders, out, cache, *options, candidate="lite0", folds=2):
    return crossval.main(
        [
            *map(str, folders),
            "--out",
            str(out),
            "--folds",
            str(folds),
            "--epochs",
            "1",
            "--views",
            "2",
            "--candidates",
            candidate,
            "--threads",
            THREADS,
            "--cache",
            str(cache),
            *options,
        ]
    )


def run_train(folders, tmp_path):
    """The final training on `folders` from tmp_path's cv.json and cache, into tmp_path / "w"."""
    return train.main(
        [
            *map(str, folders),
            "--crossval",
            str(tmp_path / "cv.json"),
            "--out",
            str(tmp_path / "w"),
            "--cache",
            str(tmp_path / "cache"),
            "--threads",
            THREADS,
        ]
    )


def test_crossval_then_train_write_deterministic_loadable_outputs(tmp_path):
    folders = [make_folder(tmp_path / "one"), make_folder(tmp_path / "two", seed=1)]
    record = run_crossval(folders, tmp_path / "cv.json", tmp_path / "cache")
    assert record["winner"] == "lite0" and record["candidates"]["lite0"]["folds_done"] == 2
    files = record["files"]
    fold_of_source = {}
    for group, entry in zip(
        source_groups([(key, e["label"]) for key, e in files.items()]), files.values(), strict=True
    ):
        assert fold_of_source.setdefault(group, entry["fold"]) == entry["fold"]
    assert len(record["candidates"]["lite0"]["logits"]) == len(files) == 48

    again = run_crossval(folders, tmp_path / "cv2.json", tmp_path / "cache2")  # no cache shared
    assert again["candidates"]["lite0"]["logits"] == record["candidates"]["lite0"]["logits"]

    metrics = run_train(folders, tmp_path)
    on_disk = json.loads((tmp_path / "w" / "metrics.json").read_text())
    assert on_disk["out_of_fold"] == json.loads(json.dumps(metrics["out_of_fold"]))
    assert set(on_disk["out_of_fold"]["per_source"]) == {"one", "two"}
    for source in ("one", "two"):  # the served threshold keeps the sensitivity within every source
        assert on_disk["out_of_fold"]["per_source"][source]["operating_point"]["sensitivity"] >= 0.85
        assert (tmp_path / "w" / f"reliability-{source}.png").is_file()
    classifier = Classifier.load(tmp_path / "w" / train.WEIGHTS_FILE)
    assert (classifier.name, classifier.version) == (train.NAME, train.VERSION)
    assert classifier.threshold == metrics["out_of_fold"]["operating_point"]["threshold"]
    assert classifier.temperature == metrics["out_of_fold"]["temperature"] > 0
    assert classifier.preprocessing == {"crop": "body", "intensity": "raw"}  # lite0: the recipe of round 1
    prediction = classifier.predict(np.zeros((64, 64), np.uint8))
    assert prediction.cam.shape == (64, 64) and isinstance(prediction.in_distribution, bool)
    for key, expected in metrics["reference_predictions"].items():
        assert classifier.predict(load_gray(folders, key)).probabilities["COVID"] == expected["p_covid"]
    checkpoint = torch.load(tmp_path / "w" / train.WEIGHTS_FILE, weights_only=True)
    assert all(not k.startswith("_") for k in checkpoint["state_dict"])  # the project's own layer names


def test_cross_source_validation_trains_on_the_other_sources_and_scores_each_source(tmp_path):
    folders = [make_folder(tmp_path / "one"), make_folder(tmp_path / "two", seed=1)]
    record = run_crossval(folders, tmp_path / "cross.json", tmp_path / "cache", "--split", "sources")
    assert record["split"] == "sources" and record["folds"] == 2
    candidate = record["candidates"]["lite0"]
    assert [fold["source"] for fold in candidate["per_fold"]] == ["one", "two"]
    assert [fold["train"] for fold in candidate["per_fold"]] == [24, 24]
    assert {entry["fold"] for key, entry in record["files"].items() if key.startswith("one/")} == {0}
    assert candidate["score"] == pytest.approx(np.mean([fold["roc_auc"] for fold in candidate["per_fold"]]))


def test_a_v3_recipe_stores_its_preprocessing_and_serving_applies_it(tmp_path):
    """3.0.0's path: a v3 recipe, calibrated on one grouped held-out split (the first of 3 folds run, the others not),
    then trained on everything."""
    folders = [make_folder(tmp_path / "one")]
    record = run_crossval(
        folders, tmp_path / "cv.json", tmp_path / "cache", "--max-folds", "1", candidate="v3-lungs-mix", folds=3
    )
    held_out = {key for key, entry in record["files"].items() if entry["fold"] == 0}
    candidate = record["candidates"]["v3-lungs-mix"]
    assert record["folds"] == 3 and record["folds_run"] == 1 and candidate["folds_done"] == 1
    assert set(candidate["logits"]) == held_out and 0 < len(held_out) < len(record["files"])
    assert [fold["held_out"] for fold in candidate["per_fold"]] == [len(held_out)]
    metrics = run_train(folders, tmp_path)
    held = metrics["out_of_fold"]
    assert held["images"] == len(held_out) and held["ece_after_cross_fitted"] is None  # no other fold to fit on
    assert held["operating_point"]["sensitivity"] >= 0.85
    classifier = Classifier.load(tmp_path / "w" / train.WEIGHTS_FILE)
    assert classifier.preprocessing == {"crop": "lungs", "intensity": "standard"}
    items = data.list_images(folders)
    views = train.cached_views(folders, items, tmp_path / "cache", 2, 0, "lungs", "standard", "slice")
    gray = load_gray(folders, items[0][0])
    assert torch.equal(views[0, 0], torch.from_numpy(resize(prepare(gray, "lungs", "standard")[0])))
    # The recipe trains on the first 3 of its 6 cached views (nothing frozen here, so the inputs are the views).
    recipe = train.recipe_namespace({**train.RECIPES["v3-lungs-mix"], "freeze": 0})
    six = train.cached_views(folders, items, tmp_path / "cache", train.VIEWS, 0, "lungs", "standard", "slice")
    assert train.option(recipe, "first_views") == 3 and torch.equal(six[:, 0], views[:, 0])
    assert all(
        torch.equal(inputs, six[:, :3]) for inputs in train.recipe_inputs(recipe, folders, items, tmp_path / "cache")
    )
    for key, expected in metrics["reference_predictions"].items():
        assert classifier.predict(load_gray(folders, key)).probabilities["COVID"] == expected["p_covid"]


def test_an_ensemble_recipe_is_scored_and_trained_member_by_member(tmp_path):
    folder = make_folder(tmp_path / "data")
    record = run_crossval([folder], tmp_path / "cv.json", tmp_path / "cache", candidate="lite0-deep-x5")
    candidate = record["candidates"]["lite0-deep-x5"]
    assert [len(fold["member_roc_auc"]) for fold in candidate["per_fold"]] == [5, 5]
    metrics = run_train([folder], tmp_path)
    assert metrics["recipe"] == "lite0-deep-x5" and len(metrics["history"]) == 5
    classifier = Classifier.load(tmp_path / "w" / train.WEIGHTS_FILE)
    assert isinstance(classifier.network, Ensemble) and len(classifier.members) == 5
    first, second = (member.features[-1][0].weight for member in classifier.members[:2])
    assert not torch.equal(first, second)  # seeds differ: five networks, not one five times
    for key, expected in metrics["reference_predictions"].items():
        assert classifier.predict(load_gray([folder], key)).probabilities["COVID"] == expected["p_covid"]
    checkpoint = torch.load(tmp_path / "w" / train.WEIGHTS_FILE, weights_only=True)
    assert checkpoint["members"] == 5 and checkpoint["state_dict"]["members.4.fc.weight"].dtype == torch.float16


def test_a_recipe_decides_how_many_augmented_views_it_trains_on_and_the_plain_view_stays(tmp_path):
    """Rounds 6 and 7 changed only the number of cached views; the plain view (what serving and the input check
    see) must be the same slice for every count, and the extra views must be distinct copies."""
    folders = [make_folder(tmp_path / "data")]
    items = data.list_images(folders)
    counts = {
        name: train.option(train.recipe_namespace(train.RECIPES[name]), "views")
        for name in ("lite0-deep-x5", "lite0-deep-x5-v16", "lite0-deep-x5-v3")
    }
    assert counts == {"lite0-deep-x5": train.VIEWS, "lite0-deep-x5-v16": 16, "lite0-deep-x5-v3": 3}
    cached = {n: train.cached_views(folders, items, tmp_path / "cache", n) for n in set(counts.values())}
    for n, views in cached.items():
        assert views.shape[:2] == (len(items), n)
        assert torch.equal(views[:, 0], cached[train.VIEWS][:, 0])
    assert all(not torch.equal(cached[16][:, v], cached[16][:, v + 1]) for v in range(1, 15))


def test_stochastic_depth_skips_residual_branches_in_training_and_never_in_evaluation():
    """Round 8's drop path regularises training only: the served pass must be the network's plain function."""
    recipe = train.recipe_namespace(train.RECIPES["lite0-deep-x5-dp"])
    network, _ = train.build(recipe)
    blocks = [m for m in network.features if hasattr(m, "drop_path")]
    assert [b.drop_path for b in blocks] == [0.2 * i / 16 for i in range(16)]  # EfficientNet's schedule

    plain = copy.deepcopy(network)
    nets.set_drop_path(plain, 0.0)
    image = torch.rand(2, 1, 224, 224) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(network.eval()(image), plain.eval()(image))

    block = next(b for b in network.features[recipe.freeze :] if getattr(b, "residual", False)).train()
    x = torch.randn(64, block.project[0].out_channels, 14, 14)
    with torch.no_grad():
        skipped = torch.tensor([torch.equal(o, i) for o, i in zip(block(x), x, strict=False)])
    assert 0 < skipped.sum() < len(x)  # some samples skip the branch, others go through it


def test_mixup_changes_training_only_when_a_recipe_asks_for_it(tmp_path):
    """The regularisers are recipe options: without them a recipe trains exactly as before (earlier rounds and the
    served model reproduce), with mixup the same seed gives another network."""
    folders = [make_folder(tmp_path / "data")]
    items = data.list_images(folders)
    y = train.labels_tensor(items)

    def trained(**options):
        recipe = train.recipe_namespace({**train.RECIPES["lite0-deep"], "epochs": 1, "views": 2, **options})
        _, inputs = train.recipe_inputs(recipe, folders, items, tmp_path / "cache")
        network, _, _ = train.fit(recipe, inputs, y, train.seed_everything(0), torch.device("cpu"))
        return network.fc.weight

    before = trained()
    assert torch.equal(trained(mixup=0.0, drop_path=0.0), before)
    assert not torch.equal(trained(mixup=0.4), before)


def test_the_caches_follow_the_preprocessing_code_not_its_formatting(tmp_path, monkeypatch):
    """Reformatting the code (ruff format) or a comment keeps the cached views; changing what it does does not."""
    code = tmp_path / "preprocessing.py"
    code.write_text("def prepare(x):\n    return x + 1\n")
    monkeypatch.setattr(train, "_PREPROCESSING_CODE", [SimpleNamespace(__file__=str(code))])
    key = train._code_key()
    code.write_text("def prepare(x):  # reformatted\n\n    return (x + 1)\n")
    assert train._code_key() == key
    code.write_text("def prepare(x):\n    return x + 2\n")
    assert train._code_key() != key
