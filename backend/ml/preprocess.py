"""The one preprocessing shared by training and serving: colour marks out, crop to the body, normalise.

`neutralise_colour_marks` runs inside the service's decoder (colour is gone after it), `to_input`
on the decoded 2-D slice. Training decodes through the same decoder, so both see the same input.
"""
import cv2
import numpy as np
import torch

from backend.imaging.anatomy import body_mask

INPUT_SIZE = 224
LABELS = ("COVID", "NonCOVID")

# A pixel whose channels differ by more than this is colour, not gray: arrows, letters and
# outlines the papers' authors drew. CT has no colour.
CHROMA = 40
# Above this share of coloured pixels the image is a colour picture, not a marked slice: it is
# only converted to gray (inpainting a photo would be slow and meaningless).
MAX_MARK_FRACTION = 0.25
BODY_MARGIN = 0.03  # of the box's side, kept around the body
BODY_SIDE = 256  # the body is found on a copy at most this large (speed)


def neutralise_colour_marks(rgb: np.ndarray) -> np.ndarray:
    """An (h, w, 3) uint8 RGB image -> the 2-D uint8 slice with coloured marks painted over from their surroundings."""
    rgb = np.ascontiguousarray(rgb[..., :3])
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if _colour_mask(rgb[::4, ::4]).mean() > MAX_MARK_FRACTION:  # a colour picture: decided on a cheap sample
        return gray
    marks = _colour_mask(rgb)
    fraction = marks.mean()
    if fraction == 0 or fraction > MAX_MARK_FRACTION:
        return gray
    marks = cv2.dilate(marks, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))  # anti-aliased edges too
    return cv2.inpaint(gray, marks, 3, cv2.INPAINT_TELEA)


def _colour_mask(rgb):
    """uint8 1 where the channels differ by more than CHROMA (OpenCV: no large temporaries on big photos)."""
    r, g, b = cv2.split(np.ascontiguousarray(rgb))
    chroma = cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))
    return (chroma > CHROMA).astype(np.uint8)


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
