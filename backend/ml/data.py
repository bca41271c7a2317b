"""The labelled slices: listing several sources, grouping by patient or paper, grouped folds, and decoding
through the service's decoder.

An item is (key, label) with key '<source>/<label>/<file name>': <source> is the folder's name, so every
item knows where it came from, and keys from different folders never collide.
"""

import re
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from backend.imaging.decode import decode_image
from backend.ml.preprocess import LABELS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# covid-ct: NonCOVID PNGs whose numbers differ by at most this much are treated as one source
# (neighbouring numbers are neighbouring slices of one patient in those collections).
NEIGHBOUR_GAP = 5
# sars-cov-2-ct ('Covid_123.png', 'Non-Covid_123.png') has no patient ids; its numbers run without gaps
# through about 60 patients of about 20 slices per class, in patient order. Blocks of this many consecutive
# numbers (2-3 patients each) are the groups: a patient across a block's edge is on both sides, so it leaks.
BLOCK = 50
_NUMBERED = re.compile(r"(?:Non-)?Covid_(\d+)\.png", re.IGNORECASE)


def list_images(folders) -> list:
    """[(key, label)] for every image in each folder/<label>/, folder by folder, in name order."""
    items = []
    names = [Path(folder).name for folder in folders]
    if len(set(names)) != len(names):
        raise SystemExit(f"two source folders share a name: {names}")
    for folder in map(Path, folders):
        found = [
            (f"{folder.name}/{label}/{path.name}", label)
            for label in LABELS
            for path in sorted((folder / label).iterdir())
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not found:
            raise SystemExit(f"no images in {folder}/{{{','.join(LABELS)}}}")
        items += found
    return items


def source_of(key: str) -> str:
    """The folder (dataset) an item came from."""
    return key.split("/", 1)[0]


def path_of(folders, key: str) -> Path:
    source, rel = key.split("/", 1)
    return next(Path(folder) for folder in folders if Path(folder).name == source) / rel


def load_gray(folders, key):
    """One slice exactly as the service sees it: file bytes through decode_image."""
    return decode_image(path_of(folders, key).read_bytes())


def source_groups(items):
    """One group id per item: images of one paper or one patient share an id (prefixed by their source).

    covid-ct COVID: the preprint id before the first '-' (all figures of one paper; coarser, so stricter,
    than the figure prefix). covid-ct NonCOVID: 'N%k.jpg' is figure N; plain numbered PNGs form runs of
    neighbouring numbers. sars-cov-2-ct: blocks of BLOCK consecutive numbers (no patient ids: leaks).
    """
    groups = [None] * len(items)
    png_numbers = {}
    for i, (key, label) in enumerate(items):
        source, _, name = key.split("/", 2)
        stem, suffix = name.rsplit(".", 1)
        prefix = f"{source}:{label}:"
        if numbered := _NUMBERED.fullmatch(name):
            groups[i] = f"{prefix}block{int(numbered.group(1)) // BLOCK}"
        elif label == "COVID":
            groups[i] = prefix + name.split("-", 1)[0]
        elif suffix.lower() == "png" and stem.isdigit():
            png_numbers.setdefault(prefix, []).append((int(stem), i))
        else:
            groups[i] = prefix + "fig" + re.split(r"%", stem, maxsplit=1)[0]
    for prefix, numbers in png_numbers.items():
        run_start, previous = None, None
        for number, i in sorted(numbers):
            if previous is None or number - previous > NEIGHBOUR_GAP:
                run_start = number
            groups[i] = f"{prefix}png{run_start}"
            previous = number
    return groups


def grouped_folds(items, folds, seed):
    """[(train indices, held-out indices)] of a group K-fold stratified by source and label: no group on both
    sides, each source's classes spread over the folds."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    strata = [f"{source_of(key)}/{label}" for key, label in items]
    return list(splitter.split(np.zeros(len(items)), strata, source_groups(items)))


def source_folds(items):
    """[(train indices, held-out indices)], one per source: trained on every other source, tested on this one."""
    sources = np.array([source_of(key) for key, _ in items])
    return [(np.flatnonzero(sources != s), np.flatnonzero(sources == s)) for s in dict.fromkeys(sources)]
