"""The labelled slices: listing, grouping by source, the split, and decoding through the service's decoder."""
import json
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


def split_by_source(items, seed=0, folds=5):
    """(train items, validation items): the first fold of `grouped_folds` (~1/folds held out)."""
    train_idx, val_idx = grouped_folds(items, folds, seed)[0]
    return [items[i] for i in train_idx], [items[i] for i in val_idx]


def load_gray(folder, rel):
    """One slice exactly as the service sees it: file bytes through decode_image."""
    return decode_image((Path(folder) / rel).read_bytes())


def save_split(path, folder, train, val, seed, folds):
    groups = dict(zip([r for r, _ in train + val], source_groups(train + val)))
    record = {
        "folder": str(folder), "seed": seed, "folds": folds, "grouping": source_groups.__doc__.strip(),
        "train": [{"file": r, "label": lab, "source": groups[r]} for r, lab in train],
        "validation": [{"file": r, "label": lab, "source": groups[r]} for r, lab in val],
    }
    Path(path).write_text(json.dumps(record, indent=1) + "\n")


def read_split(path, part="validation"):
    """[(relative path, label)] of one part of a recorded split."""
    return [(entry["file"], entry["label"]) for entry in json.loads(Path(path).read_text())[part]]
