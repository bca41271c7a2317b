"""The one preprocessing shared by training and serving: find the lung field, crop, standardise intensity, scale.

The service's decoder has already painted over coloured marks (`backend.imaging.marks`); `to_input`
runs on the decoded 2-D slice. Training decodes through the same decoder and crops through `prepare`,
so both see the same input. How to crop and whether to standardise are a recipe's choices, stored with
the weights (`Classifier.load` passes them back here):

- crop "lungs": the lungs' box plus a margin (`backend.imaging.lungfield`); "body": the body's box (models
  before 3.0.0).
- intensity "standard": aerated lung and soft tissue moved to the lung window's levels
  (`backend.imaging.intensity`); "raw": the decoded gray levels (models before 3.0.0).
"""

from typing import NamedTuple

import cv2
import numpy as np
import torch

from backend.imaging import intensity as levels
from backend.imaging import lungfield
from backend.imaging.lungfield import LungField

INPUT_SIZE = 224
LABELS = ("COVID", "NonCOVID")
CROPS = ("body", "lungs")
INTENSITIES = ("raw", "standard")
V3 = {"crop": "lungs", "intensity": "standard"}  # what `to_input` does unless told otherwise


class Prepared(NamedTuple):
    input: torch.Tensor  # (1, INPUT_SIZE, INPUT_SIZE) float in [-1, 1]
    box: tuple  # (top, bottom, left, right) of the crop in the slice
    field: LungField  # the slice's lung field: `field.assessable` says whether there is lung to judge


def prepare(gray: np.ndarray, crop=V3["crop"], intensity=V3["intensity"]) -> tuple:
    """(the crop of a 2-D uint8 slice as uint8, its box in the slice, the slice's lung field)."""
    if crop not in CROPS or intensity not in INTENSITIES:
        raise ValueError(f"unknown preprocessing: crop {crop!r}, intensity {intensity!r}")
    field = lungfield.find(gray)
    top, bottom, left, right = box = field.box if crop == "lungs" else field.body_box
    pixels = gray[top:bottom, left:right]
    if intensity == "standard":
        pixels = levels.standardise(pixels, field.levels)
    return pixels, box, field


def resize(crop: np.ndarray) -> np.ndarray:
    """A 2-D uint8 image -> INPUT_SIZE x INPUT_SIZE uint8: enlarged smoothly, shrunk by area.

    INTER_AREA enlarges into blocks of repeated pixels, so a small figure crop would reach the network
    as a block pattern that depends on its size (and that no hospital slice has): a crop with a side
    under INPUT_SIZE is first enlarged as a whole (INTER_LINEAR, aspect kept) until that side is INPUT_SIZE.
    """
    h, w = crop.shape
    if min(h, w) < INPUT_SIZE:
        factor = INPUT_SIZE / min(h, w)
        size = (max(INPUT_SIZE, round(w * factor)), max(INPUT_SIZE, round(h * factor)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR)
    return cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)


def scale(pixels) -> torch.Tensor:
    """uint8 pixels (..., h, w) -> float in [-1, 1] with a channel axis (..., 1, h, w): the ImageNet scaling."""
    return torch.as_tensor(pixels).float().div_(127.5).sub_(1.0).unsqueeze(-3)


def to_input(gray: np.ndarray, crop=V3["crop"], intensity=V3["intensity"]) -> Prepared:
    """A decoded 2-D uint8 slice -> what serving and validation feed the network, with its box and lung field."""
    pixels, box, field = prepare(gray, crop, intensity)
    return Prepared(scale(resize(pixels)), box, field)


def cam_to_slice(cam: np.ndarray, box: tuple, shape: tuple, side: int = 112) -> np.ndarray:
    """The CAM of the crop placed into the whole slice's frame, at most `side` px on the longer side.

    Outside the crop's box the map is 0 (no evidence either way), so the heatmap covers the whole slice.
    """
    h, w = shape
    scale = min(1.0, side / max(h, w))
    out_h, out_w = max(1, round(h * scale)), max(1, round(w * scale))
    top, bottom, left, right = (round(v * scale) for v in box)
    bottom, right = max(bottom, top + 1), max(right, left + 1)
    frame = np.zeros((out_h, out_w), np.float32)
    frame[top:bottom, left:right] = cv2.resize(
        cam.astype(np.float32), (right - left, bottom - top), interpolation=cv2.INTER_LINEAR
    )
    return frame
