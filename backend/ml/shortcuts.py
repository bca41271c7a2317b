"""Shortcut audit: how well the frame alone predicts the label, per source.

Run `python -m backend.ml.shortcuts <folder>...`.

A model can learn how a class's images were made (their size, framing, brightness, file format) instead
of the lungs. Before any training this measures how much of the label such frame-level features give
away in each source: each feature alone (ROC AUC in its better direction), and all of them together
through a logistic regression and gradient boosting, scored out of fold (grouped 5-fold by
`data.source_groups`, so no patient or paper is on both sides) with a grouped bootstrap interval.
Writes shortcuts.json beside the weights; the model card quotes it. What the served model does with
re-framed slices is tested in tests/test_reframing.py.
"""

import argparse
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from backend.imaging import formats
from backend.imaging.decode import decode_image
from backend.ml import calibration, data
from backend.ml.metrics import POSITIVE

FEATURES = (
    "width",
    "height",
    "aspect",
    "mean_brightness",
    "border_brightness",
    "corner_brightness",
    "is_jpeg",
    "is_colour",
)
BORDER = 0.03  # of each side: the frame whose brightness is the "border colour"
FOLDS = 5
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def frame_features(content: bytes) -> list:
    """The FEATURES of one file: header facts and the decoded slice's brightness, nothing about the lungs."""
    with Image.open(io.BytesIO(content)) as image:
        mode = image.mode
    gray = decode_image(content).astype(np.float32)
    h, w = gray.shape
    by, bx = max(1, round(BORDER * h)), max(1, round(BORDER * w))
    frame = np.concatenate([gray[:by].ravel(), gray[-by:].ravel(), gray[:, :bx].ravel(), gray[:, -bx:].ravel()])
    corners = [gray[:by, :bx], gray[:by, -bx:], gray[-by:, :bx], gray[-by:, -bx:]]
    return [
        w,
        h,
        w / h,
        gray.mean(),
        frame.mean(),
        np.mean([c.mean() for c in corners]),
        float(formats.sniff(content) == formats.JPEG),
        float(mode not in ("L", "1", "I", "I;16")),
    ]


def _models():
    return {
        "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "gradient_boosting": HistGradientBoostingClassifier(max_iter=100, random_state=0),
    }


def audit(x, positive, groups, items, seed=0) -> dict:
    """Each feature's own ROC AUC and the two models' out-of-fold ROC AUC (grouped folds, bootstrap interval)."""
    alone = {}
    for j, name in enumerate(FEATURES):
        if np.ptp(x[:, j]) == 0:
            alone[name] = 0.5  # constant within this source: it tells nothing
        else:
            auc = roc_auc_score(positive, x[:, j])
            alone[name] = round(max(auc, 1 - auc), 4)
    folds = data.grouped_folds(items, FOLDS, seed)
    together = {}
    for name, model in _models().items():
        p = np.zeros(len(positive))
        for train_index, held_out in folds:
            p[held_out] = model.fit(x[train_index], positive[train_index]).predict_proba(x[held_out])[:, 1]
        result = calibration.bootstrap_auc(p, positive, groups)
        together[name] = {"roc_auc": round(result["roc_auc"], 4), "ci95": [round(v, 4) for v in result["ci95"]]}
    return {
        "images": len(positive),
        "covid": int(positive.sum()),
        "groups": len(set(groups)),
        "each_feature_alone": alone,
        "out_of_fold": together,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", metavar="folder")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR / "shortcuts.json")
    args = parser.parse_args(argv)
    items = data.list_images(args.folders)
    x = np.array([frame_features(data.path_of(args.folders, key).read_bytes()) for key, _ in items])
    positive = np.array([label == POSITIVE for _, label in items])
    groups = np.array(data.source_groups(items))
    sources = np.array([data.source_of(key) for key, _ in items])
    result = {
        "features": list(FEATURES),
        "folds": f"{FOLDS}-fold StratifiedGroupKFold by data.source_groups, seed 0",
        "interval": "95 % percentile interval, 2,000 bootstrap resamples of whole groups",
        "sources": {},
    }
    for source in dict.fromkeys(sources):
        inside = sources == source
        result["sources"][source] = audit(
            x[inside], positive[inside], list(groups[inside]), [items[i] for i in np.flatnonzero(inside)]
        )
    if len(result["sources"]) > 1:
        result["union"] = audit(x, positive, list(groups), items)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for source, entry in {**result["sources"], **({"union": result["union"]} if "union" in result else {})}.items():
        models = ", ".join(
            f"{n} {v['roc_auc']:.3f} ({v['ci95'][0]:.3f}-{v['ci95'][1]:.3f})" for n, v in entry["out_of_fold"].items()
        )
        strongest = max(entry["each_feature_alone"].items(), key=lambda kv: kv[1])
        print(
            f"{source}: {entry['images']} images; frame features out of fold: {models}; "
            f"strongest alone: {strongest[0]} {strongest[1]:.3f}"
        )
    return result


if __name__ == "__main__":
    main()
