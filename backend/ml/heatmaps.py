"""Model-card examples: `python -m backend.ml.heatmaps <folder>... --out backend/ml/weights/examples`.

preprocess-*.png: the file as stored (colour) | the decoded slice (coloured marks painted over by the
decoder) with the crop the model's preprocessing takes outlined | what the network gets (the crop,
intensity standardised, 224 px), for the slices with the most colour (one per paper) and one slice per
other source. heatmap-*.png: a slice beside the service's own heatmap overlay (the same rendering as
POST /analyze), per class and source. All downscaled derived images, never copies of dataset files.
The served weights were trained on every slice of the folders, so the heatmap examples are training slices.
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
from backend.imaging.marks import CHROMA
from backend.ml import data
from backend.ml.classifier import Classifier
from backend.ml.preprocess import prepare, resize
from backend.utils.helpers import fit_to_box

SIDE = 224


def side_by_side(gray, cam):
    """The slice and its heatmap overlay side by side, longer side SIDE px each, RGB uint8."""
    small = np.asarray(fit_to_box(gray, (SIDE, SIDE)))
    body = anatomy.body_mask(small)
    overlaid = heatmap.overlay(small, heatmap.activation_map(cam, small.shape, body), body)
    return np.hstack([np.repeat(small[..., None], 3, axis=2), overlaid])


def before_after(path, gray, preprocessing):
    """The stored file in colour, the decoded slice with its crop's box and the network's input, SIDE px each,
    RGB uint8."""
    rgb = np.asarray(Image.open(io.BytesIO(Path(path).read_bytes())).convert("RGB"))
    pixels, (top, bottom, left, right), _ = prepare(gray, **preprocessing)
    boxed = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    cv2.rectangle(boxed, (left, top), (right - 1, bottom - 1), (0, 200, 255), max(1, gray.shape[1] // 150))
    return np.hstack(
        [
            _square(Image.fromarray(rgb)),
            _square(Image.fromarray(boxed)),
            np.repeat(cv2.resize(resize(pixels), (SIDE, SIDE))[..., None], 3, axis=2),
        ]
    )


def _square(image):
    """The picture fitted into SIDE x SIDE, centred on black."""
    fitted = np.asarray(fit_to_box(image, (SIDE, SIDE)))
    out = np.zeros((SIDE, SIDE, 3), np.uint8)
    top, left = (SIDE - fitted.shape[0]) // 2, (SIDE - fitted.shape[1]) // 2
    out[top : top + fitted.shape[0], left : left + fitted.shape[1]] = fitted
    return out


def colour_share(path):
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int16)
    return float(((rgb.max(axis=2) - rgb.min(axis=2)) > CHROMA).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", metavar="folder")
    parser.add_argument("--weights", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=2)
    parser.add_argument("--marked", type=int, default=3, help="before/after examples")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    classifier = Classifier.load(args.weights)
    args.out.mkdir(parents=True, exist_ok=True)
    items = data.list_images(args.folders)
    sources = list(dict.fromkeys(data.source_of(key) for key, _ in items))

    shares = {key: colour_share(data.path_of(args.folders, key)) for key, _ in items}
    best_per_group = {}
    for (key, _), group in zip(items, data.source_groups(items), strict=False):  # one example per paper or patient
        if shares[key] > shares.get(best_per_group.get(group), -1):
            best_per_group[group] = key
    marked = sorted(best_per_group.values(), key=lambda key: -shares[key])[: args.marked]
    marked += [
        next(key for key, _ in items[::7] if data.source_of(key) == s)
        for s in sources
        if s not in {data.source_of(key) for key in marked}
    ]
    for n, key in enumerate(marked):
        picture = before_after(
            data.path_of(args.folders, key), data.load_gray(args.folders, key), classifier.preprocessing
        )
        Image.fromarray(picture).save(args.out / f"preprocess-{n}.png", optimize=True)
        print(f"{key} -> {args.out / f'preprocess-{n}.png'}")
    for source in sources:
        for label in classifier.labels:
            chosen = [key for key, lab in items if lab == label and data.source_of(key) == source]
            step = max(1, len(chosen) // max(1, args.per_class))
            for n, key in enumerate(chosen[step // 2 :: step][: args.per_class]):
                gray = data.load_gray(args.folders, key)
                prediction = classifier.predict(gray)
                name = (
                    f"heatmap-{source}-{label.lower()}-{n}-pred-{prediction.label.lower()}-"
                    f"{prediction.confidence:.2f}.png"
                )
                Image.fromarray(side_by_side(gray, prediction.cam)).save(args.out / name, optimize=True)
                print(f"{key} -> {args.out / name}")


if __name__ == "__main__":
    main()
