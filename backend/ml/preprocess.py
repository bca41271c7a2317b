"""The one preprocessing shared by training and serving: crop to the body, normalise.

The service's decoder has already painted over coloured marks (`backend.imaging.marks`); `to_input`
runs on the decoded 2-D slice. Training decodes through the same decoder, so both see the same input.
"""
import cv2
import numpy as np
import torch

from backend.imaging.anatomy import body_mask

INPUT_SIZE = 224
LABELS = ("COVID", "NonCOVID")

BODY_MARGIN = 0.03  # of the box's side, kept around the body
BODY_SIDE = 256  # the body is found on a copy at most this large (speed)


def body_box(gray: np.ndarray) -> tuple:
    """(top, bottom, left, right) of the body (largest bright region) plus a margin; the whole slice if none."""
    h, w = gray.shape
    scale = min(1.0, BODY_SIDE / max(h, w))
    small = gray if scale == 1.0 else cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                 interpolation=cv2.INTER_AREA)
    rows, cols = np.nonzero(body_mask(small))
    if rows.size == 0:
        return 0, h, 0, w
    top, bottom = rows.min() / scale, (rows.max() + 1) / scale
    left, right = cols.min() / scale, (cols.max() + 1) / scale
    my, mx = BODY_MARGIN * (bottom - top), BODY_MARGIN * (right - left)
    return (max(0, int(top - my)), min(h, int(np.ceil(bottom + my))),
            max(0, int(left - mx)), min(w, int(np.ceil(right + mx))))


def crop_to_body(gray: np.ndarray) -> tuple:
    """(the body's crop of a 2-D uint8 slice, its box (top, bottom, left, right) in the slice)."""
    top, bottom, left, right = box = body_box(gray)
    return gray[top:bottom, left:right], box


def resize(crop: np.ndarray) -> np.ndarray:
    """A 2-D uint8 image -> INPUT_SIZE x INPUT_SIZE uint8 (INTER_AREA)."""
    return cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)


def scale(pixels) -> torch.Tensor:
    """uint8 pixels (..., h, w) -> float in [-1, 1] with a channel axis (..., 1, h, w): the ImageNet scaling."""
    return torch.as_tensor(pixels).float().div_(127.5).sub_(1.0).unsqueeze(-3)


def normalise(crop: np.ndarray) -> torch.Tensor:
    """A 2-D uint8 image -> (1, INPUT_SIZE, INPUT_SIZE) float tensor in [-1, 1]."""
    return scale(resize(crop))


def to_input(gray: np.ndarray) -> tuple:
    """A decoded 2-D uint8 slice -> (model input, body box): what serving and validation feed the network."""
    crop, box = crop_to_body(gray)
    return normalise(crop), box


def cam_to_slice(cam: np.ndarray, box: tuple, shape: tuple, side: int = 112) -> np.ndarray:
    """The CAM of the body crop placed into the whole slice's frame, at most `side` px on the longer side.

    Outside the body box the map is 0 (no evidence either way), so the heatmap covers the whole slice.
    """
    h, w = shape
    scale = min(1.0, side / max(h, w))
    out_h, out_w = max(1, round(h * scale)), max(1, round(w * scale))
    top, bottom, left, right = (round(v * scale) for v in box)
    bottom, right = max(bottom, top + 1), max(right, left + 1)
    frame = np.zeros((out_h, out_w), np.float32)
    frame[top:bottom, left:right] = cv2.resize(cam.astype(np.float32), (right - left, bottom - top),
                                               interpolation=cv2.INTER_LINEAR)
    return frame
