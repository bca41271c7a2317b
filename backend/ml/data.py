"""The labelled slices: listing, grouping by source, grouped folds, and decoding through the service's decoder."""
import re
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from backend.imaging.decode import decode_image
from backend.ml.preprocess import LABELS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# NonCOVID PNGs whose numbers differ by at most this much are treated as one source (neighbouring
# numbers are neighbouring slices of one patient in those collections).
NEIGHBOUR_GAP = 5


def list_images(folder):
    """[(path relative to folder, label)] for every image in folder/<label>/, in name order."""
    folder = Path(folder)
    items = []
    for label in LABELS:
        for path in sorted((folder / label).iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                items.append((f"{label}/{path.name}", label))
    if not items:
        raise SystemExit(f"no images in {folder}/{{{','.join(LABELS)}}}")
    return items


def source_groups(items):
    """One group id per item: images of one paper or one patient share an id.

    COVID: the preprint id before the first '-' (all figures of one paper; coarser, so stricter,
    than the figure prefix before the last '-' or '%'). NonCOVID: 'N%k.jpg' is figure N; plain
    numbered PNGs form runs of neighbouring numbers.
    """
    groups = [None] * len(items)
    png_numbers = []
    for i, (rel, label) in enumerate(items):
        name = rel.split("/", 1)[1]
        stem, suffix = name.rsplit(".", 1)
        if label == "COVID":
            groups[i] = "COVID:" + name.split("-", 1)[0]
        elif suffix.lower() == "png" and stem.isdigit():
            png_numbers.append((int(stem), i))
        else:
            groups[i] = "NonCOVID:fig" + re.split(r"%", stem, maxsplit=1)[0]
    run_start, previous = None, None
    for number, i in sorted(png_numbers):
        if previous is None or number - previous > NEIGHBOUR_GAP:
            run_start = number
        groups[i] = f"NonCOVID:png{run_start}"
        previous = number
    return groups


def grouped_folds(items, folds, seed):
    """[(train indices, held-out indices)] of a stratified group K-fold: no source on both sides."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    labels = [label for _, label in items]
    return list(splitter.split(np.zeros(len(items)), labels, source_groups(items)))


def load_gray(folder, rel):
    """One slice exactly as the service sees it: file bytes through decode_image."""
    return decode_image((Path(folder) / rel).read_bytes())
