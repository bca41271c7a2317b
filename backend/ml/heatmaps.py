"""Example heatmaps for the model card: `python -m backend.ml.heatmaps <folder> --split ... --out ...`.

Each PNG is a downscaled slice beside the same slice with its CAM overlaid (upsampled, ReLU,
normalised, JET, blend 0.4), so they are derived images, never copies of dataset files.
"""
import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from backend.config import DEFAULT_MODEL_PATH
from backend.ml import data
from backend.ml.classifier import Classifier

SIDE = 224


def overlay(gray, cam):
    """Slice and its CAM overlay side by side, SIDE px high, BGR uint8."""
    small = cv2.resize(gray, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    heat = np.maximum(cv2.resize(cam, (SIDE, SIDE), interpolation=cv2.INTER_LINEAR), 0)
    heat = np.uint8(255 * heat / heat.max()) if heat.max() > 0 else np.zeros_like(small)
    base = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
    blended = cv2.addWeighted(cv2.applyColorMap(heat, cv2.COLORMAP_JET), 0.4, base, 0.6, 0)
    return np.hstack([base, blended])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--split", type=Path, required=True, help="examples come from its validation part")
    parser.add_argument("--weights", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    classifier = Classifier.load(args.weights)
    args.out.mkdir(parents=True, exist_ok=True)
    items = data.read_split(args.split)
    for label in classifier.labels:
        chosen = [rel for rel, lab in items if lab == label]
        step = max(1, len(chosen) // args.per_class)
        for n, rel in enumerate(chosen[::step][:args.per_class]):
            gray = data.load_gray(args.folder, rel)
            prediction = classifier.predict(gray)
            name = f"{label.lower()}-{n}-pred-{prediction.label.lower()}-{prediction.probabilities[prediction.label]:.2f}.png"
            cv2.imwrite(str(args.out / name), overlay(gray, prediction.cam), [cv2.IMWRITE_PNG_COMPRESSION, 9])
            print(f"{rel} -> {args.out / name}")


if __name__ == "__main__":
    main()
