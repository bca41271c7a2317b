"""Example heatmaps for the model card: `python -m backend.ml.heatmaps <folder> --split ... --out ...`.

Each PNG is a downscaled slice beside the service's own heatmap overlay of it (the same
rendering as POST /analyze), so they are derived images, never copies of dataset files.
"""
import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from backend.config import DEFAULT_MODEL_PATH
from backend.imaging import anatomy, heatmap
from backend.ml import data
from backend.ml.classifier import Classifier
from backend.utils.helpers import fit_to_box

SIDE = 224


def side_by_side(gray, cam):
    """The slice and its heatmap overlay side by side, longer side SIDE px each, RGB uint8."""
    small = np.asarray(fit_to_box(gray, (SIDE, SIDE)))
    body = anatomy.body_mask(small)
    overlaid = heatmap.overlay(small, heatmap.activation_map(cam, small.shape, body), body)
    return np.hstack([np.repeat(small[..., None], 3, axis=2), overlaid])


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
            Image.fromarray(side_by_side(gray, prediction.cam)).save(args.out / name, optimize=True)
            print(f"{rel} -> {args.out / name}")


if __name__ == "__main__":
    main()
