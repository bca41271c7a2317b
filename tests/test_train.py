"""Training smoke test: two epochs on small generated slices, deterministic, with loadable outputs."""
import json

import cv2
import numpy as np
import torch

from backend.ml import train
from backend.ml.classifier import Classifier
from backend.ml.data import read_split, source_groups


def make_folder(root):
    """12 COVID slices from 6 'papers' (bright blobs) and 12 NonCOVID from 6 'patients' (none)."""
    rng = np.random.default_rng(0)
    for label in ("COVID", "NonCOVID"):
        (root / label).mkdir(parents=True)
        for source in range(6):
            for k in range(2):
                gray = rng.normal(60, 15, (96, 128))
                if label == "COVID":
                    y, x = rng.integers(20, 76), rng.integers(20, 108)
                    cv2.circle(gray, (int(x), int(y)), 14, 220, -1)
                name = f"2020.0{source}.paper-p1-{k}.png" if label == "COVID" else f"{100 * source + k}.png"
                cv2.imwrite(str(root / label / name), np.clip(gray, 0, 255).astype(np.uint8))
    return root


def run(folder, out, *options):
    return train.main([str(folder), "--out", str(out), "--epochs", "2", "--batch-size", "4",
                       "--widths", "8", "8", "16", "--folds", "3", "--threads", "2", *options])


def test_two_epochs_write_loadable_deterministic_outputs(tmp_path):
    folder = make_folder(tmp_path / "data")
    metrics = run(folder, tmp_path / "a")
    assert metrics["epochs_run"] == 2 and len(metrics["history"]) == 2
    assert set(metrics["validation"]) >= {"roc_auc", "accuracy", "sensitivity", "specificity", "f1"}
    on_disk = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert on_disk["validation"] == metrics["validation"]

    classifier = Classifier.load(tmp_path / "a" / "ctnet.pt")
    assert (classifier.name, classifier.version) == (train.NAME, train.VERSION)
    assert classifier.predict(np.zeros((64, 64), np.uint8)).cam.shape == (28, 28)

    train_items, val_items = read_split(tmp_path / "a" / "split.json", "train"), read_split(tmp_path / "a" / "split.json")
    groups = dict(zip([r for r, _ in train_items + val_items], source_groups(train_items + val_items)))
    assert not {groups[r] for r, _ in train_items} & {groups[r] for r, _ in val_items}
    assert len(val_items) == len(metrics["validation_p_covid"])

    run(folder, tmp_path / "b")
    first = torch.load(tmp_path / "a" / "ctnet.pt", weights_only=True)["state_dict"]
    second = torch.load(tmp_path / "b" / "ctnet.pt", weights_only=True)["state_dict"]
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_weight_average_is_what_is_validated_and_saved(tmp_path):
    folder = make_folder(tmp_path / "data")
    plain = run(folder, tmp_path / "plain")
    averaged = run(folder, tmp_path / "ema", "--ema", "0.5")
    assert averaged["args"]["ema"] == 0.5
    first = torch.load(tmp_path / "plain" / "ctnet.pt", weights_only=True)["state_dict"]
    second = torch.load(tmp_path / "ema" / "ctnet.pt", weights_only=True)["state_dict"]
    assert first.keys() == second.keys()  # a plain CTNet checkpoint, not the averaging wrapper
    assert not torch.equal(first["fc.weight"], second["fc.weight"])
    assert averaged["validation_p_covid"] != plain["validation_p_covid"]
    assert Classifier.load(tmp_path / "ema" / "ctnet.pt").predict(np.zeros((64, 64), np.uint8)).cam.shape == (28, 28)
