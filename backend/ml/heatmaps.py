"""Model-card examples: `python -m backend.ml.heatmaps <folder> --out backend/ml/weights/examples`.

preprocess-*.png: the file as stored (colour) | the slice the model gets (coloured marks painted
over by the decoder) with its body crop outlined, for the slices with the most colour (one per source).
heatmap-*.png: a slice beside the service's own heatmap overlay (the same rendering as
POST /analyze). All downscaled derived images, never copies of dataset files. The served weights
were trained on every slice of the folder, so the heatmap examples are training slices.
"""
import argparse
import io
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from backend.config import DEFAULT_MODEL_PATH
from backend.imaging import anatomy, heatmap
from backend.ml import data
from backend.ml.classifier import Classifier
from backend.imaging.marks import CHROMA
from backend.ml.preprocess import body_box
from backend.utils.helpers import fit_to_box

SIDE = 224


def side_by_side(gray, cam):
    """The slice and its heatmap overlay side by side, longer side SIDE px each, RGB uint8."""
    small = np.asarray(fit_to_box(gray, (SIDE, SIDE)))
    body = anatomy.body_mask(small)
    overlaid = heatmap.overlay(small, heatmap.activation_map(cam, small.shape, body), body)
    return np.hstack([np.repeat(small[..., None], 3, axis=2), overlaid])


def before_after(path, gray):
    """The stored file in colour and the decoded slice with its body box, longer side SIDE px each, RGB uint8."""
    rgb = np.asarray(Image.open(io.BytesIO(Path(path).read_bytes())).convert("RGB"))
    top, bottom, left, right = body_box(gray)
    boxed = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    cv2.rectangle(boxed, (left, top), (right - 1, bottom - 1), (0, 200, 255), max(1, gray.shape[1] // 150))
    return np.hstack([np.asarray(fit_to_box(Image.fromarray(rgb), (SIDE, SIDE))),
                      np.asarray(fit_to_box(Image.fromarray(boxed), (SIDE, SIDE)))])


def colour_share(path):
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int16)
    return float(((rgb.max(axis=2) - rgb.min(axis=2)) > CHROMA).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--weights", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=2)
    parser.add_argument("--marked", type=int, default=3, help="before/after examples")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    classifier = Classifier.load(args.weights)
    args.out.mkdir(parents=True, exist_ok=True)
    items = data.list_images(args.folder)

    shares = {rel: colour_share(args.folder / rel) for rel, _ in items}
    best_per_source = {}
    for (rel, _), source in zip(items, data.source_groups(items)):  # one example per paper
        if shares[rel] > shares.get(best_per_source.get(source), -1):
            best_per_source[source] = rel
    marked = sorted(best_per_source.values(), key=lambda rel: -shares[rel])[:args.marked]
    for n, rel in enumerate(marked):
        picture = before_after(args.folder / rel, data.load_gray(args.folder, rel))
        Image.fromarray(picture).save(args.out / f"preprocess-{n}.png", optimize=True)
        print(f"{rel} -> {args.out / f'preprocess-{n}.png'}")
    for label in classifier.labels:
        chosen = [rel for rel, lab in items if lab == label]
        step = max(1, len(chosen) // max(1, args.per_class))
        for n, rel in enumerate(chosen[step // 2::step][:args.per_class]):
            gray = data.load_gray(args.folder, rel)
            prediction = classifier.predict(gray)
            name = f"heatmap-{label.lower()}-{n}-pred-{prediction.label.lower()}-{prediction.confidence:.2f}.png"
            Image.fromarray(side_by_side(gray, prediction.cam)).save(args.out / name, optimize=True)
            print(f"{rel} -> {args.out / name}")


if __name__ == "__main__":
    main()
