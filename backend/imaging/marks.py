"""Coloured annotation marks painted over: the decoder's last step for colour images.

Papers' authors draw arrows, letters and outlines in colour on their CT figures; CT itself has no
colour. The decoder paints such marks over from their surroundings before anything else sees the
slice, so the model (in training and in serving) and the pictures get the same clean gray slice.
"""

import cv2
import numpy as np

# A pixel whose channels differ by more than this is colour, not gray.
CHROMA = 40
# Above this share of coloured pixels the image is a colour picture, not a marked slice: it is
# only converted to gray (inpainting a photo would be slow and meaningless).
MAX_MARK_FRACTION = 0.25


def neutralise_colour_marks(rgb: np.ndarray) -> np.ndarray:
    """An (h, w, 3) uint8 RGB image -> the 2-D uint8 slice with coloured marks painted over from their surroundings."""
    rgb = np.ascontiguousarray(rgb[..., :3])
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if colour_mask(rgb[::4, ::4]).mean() > MAX_MARK_FRACTION:  # a colour picture: decided on a cheap sample
        return gray
    marks = colour_mask(rgb)
    fraction = marks.mean()
    if fraction == 0 or fraction > MAX_MARK_FRACTION:
        return gray
    marks = cv2.dilate(marks, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))  # anti-aliased edges too
    return cv2.inpaint(gray, marks, 3, cv2.INPAINT_TELEA)


def colour_mask(rgb: np.ndarray) -> np.ndarray:
    """uint8 1 where the channels differ by more than CHROMA (OpenCV: no large temporaries on big photos)."""
    r, g, b = cv2.split(np.ascontiguousarray(rgb))
    chroma = cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))
    return (chroma > CHROMA).astype(np.uint8)
