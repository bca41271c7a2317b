"""Resolution floor: how far the served model's P(COVID) moves when a real slice's lungs get fewer pixels.

Run `python -m backend.ml.resolution <folder>...` after training (it scores with the served weights).

A figure crop or a thumbnail may show the lungs 50 px across, where a hospital slice shows them 300-400 px
across. Shrinking loses the detail the model judges, so its answer drifts away from the full-resolution
one, gradually, not at one size. For every real slice judged with a lung field at least INPUT_SIZE px
across on its shorter side (its answer is then the full-resolution one), the whole slice is shrunk by area
until that side is each of SIDES px and scored again. The floor is the smallest measured side at which
the mean move is still within LIMIT, the most one slice may move under re-framing
(tests/test_reframing.py): below it the typical slice's answer is further from its full-resolution answer
than the service allows for one slice, so the classifier does not judge a lung field under the floor
(`classifier.MIN_LUNG_SIDE`, reason `low_resolution`). Writes resolution.json beside the weights; the
model card quotes it.
"""

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from backend.ml import data
from backend.ml.classifier import Classifier
from backend.ml.preprocess import INPUT_SIZE

SIDES = (192, 160, 128, 112, 96, 88, 80, 72, 64, 56, 48)  # the lung field's shorter side, px
LIMIT = 0.10  # the most P(COVID) may move for one slice under one re-framing
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def shrunk_to(gray: np.ndarray, field_side: int, side: int) -> np.ndarray:
    """The whole slice shrunk by area so that a lung field `field_side` px across becomes `side` px across."""
    h, w = gray.shape
    factor = side / field_side
    return cv2.resize(gray, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)


def moves(classifier: Classifier, gray: np.ndarray) -> dict | None:
    """{side: |P(COVID) at that side - P(COVID) at full resolution|}, or None when the slice does not qualify."""
    prediction = classifier.predict(gray)
    if not prediction.assessable or prediction.crop_side < INPUT_SIZE:
        return None
    p = prediction.probabilities["COVID"]
    smaller = classifier.predict_batch([shrunk_to(gray, prediction.crop_side, side) for side in SIDES])
    return {side: abs(q.probabilities["COVID"] - p) for side, q in zip(SIDES, smaller, strict=True)}


def summary(rows: list) -> dict:
    """Per side: the mean, median and 95th percentile move and the share of slices moving more than LIMIT."""
    out = {}
    for side in SIDES:
        m = np.array([row[side] for row in rows])
        out[str(side)] = {
            "mean": round(float(m.mean()), 4),
            "median": round(float(np.median(m)), 4),
            "p95": round(float(np.percentile(m, 95)), 4),
            "over_limit": round(float((m > LIMIT).mean()), 4),
        }
    return out


def floor(by_side: dict) -> int:
    """The smallest measured side from which every larger side's mean move is within LIMIT."""
    smallest = max(SIDES)
    for side in sorted(SIDES, reverse=True):
        if by_side[str(side)]["mean"] > LIMIT:
            break
        smallest = side
    return smallest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", metavar="folder")
    parser.add_argument("--weights", type=Path, default=WEIGHTS_DIR / "covid-ct-effnet-lite0.pt")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR / "resolution.json")
    args = parser.parse_args(argv)
    classifier = Classifier.load(args.weights)
    rows = {}
    for key, _ in data.list_images(args.folders):
        row = moves(classifier, data.load_gray(args.folders, key))
        if row is not None:
            rows.setdefault(data.source_of(key), []).append(row)
    every = [row for source_rows in rows.values() for row in source_rows]
    pooled = summary(every)
    result = {
        "model": f"{classifier.name} {classifier.version}",
        "method": f"real slices judged with a lung field >= {INPUT_SIZE} px across, the whole slice shrunk by area "
        "until the field's shorter side is each side; move = |P(COVID) - P(COVID) at full resolution|",
        "limit": LIMIT,
        "slices": {source: len(source_rows) for source, source_rows in rows.items()},
        "pooled": pooled,
        "sources": {source: summary(source_rows) for source, source_rows in rows.items()},
        "floor": floor(pooled),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{len(every)} slices; mean move of P(COVID) by the lung field's side (px):")
    for side in SIDES:
        entry = pooled[str(side)]
        print(f"  {side:4d}: mean {entry['mean']:.3f}, over {LIMIT}: {entry['over_limit']:.1%}")
    print(f"floor: {result['floor']} px")
    return result


if __name__ == "__main__":
    main()
