"""The lung field of one slice: where the lungs are, whether there is enough lung to judge, and its intensity
anchors. Measured once per slice on a small copy (a few ms), shared by the model's preprocessing and the
decision that a slice is not assessable.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from backend.imaging import anatomy, intensity

SIDE = 256  # the masks are found on a copy at most this large (speed)
MARGIN = 0.10  # of the lungs' box, kept on each side: the chest wall and pleura, where COVID-19 starts
BODY_MARGIN = 0.03  # of the body's box, kept on each side (the body crop of models before 3.0.0)
# Below this share of the thorax the slice shows no lung worth judging: above the apices, below the bases
# (where bowel gas is all that is dark), or the lungs only a sliver. Mid-chest slices hold 25-50 %.
MIN_LUNG_SHARE = 0.08
BORDER_TOLERANCE = 6  # gray levels: a border of one colour stays this close to it through JPEG compression
MIN_CONTENT = 0.25  # of the slice's area: a "border" that leaves less is the slice's own dark or bright background


@dataclass(frozen=True)
class LungField:
    box: tuple  # (top, bottom, left, right) in the slice's pixels: the lungs plus MARGIN, widened to be symmetric
    # about the thorax's middle; the body's box when no lung is found
    body_box: tuple  # the body's box plus BODY_MARGIN (`anatomy.body_mask`: the whole slice when no body is found)
    share: float  # the lungs' area over the thorax's (the body's convex hull)
    levels: tuple | None  # intensity anchors (aerated lung, soft tissue) in gray levels, or None

    @property
    def assessable(self) -> bool:
        return self.share >= MIN_LUNG_SHARE


def find(gray: np.ndarray) -> LungField:
    """The lung field of a decoded 2-D uint8 slice of any size, measured inside its `content_box`."""
    h, w = gray.shape
    top, bottom, left, right = content = content_box(gray)
    small, scale = shrunk(gray[top:bottom, left:right])
    chest = anatomy.chest_mask(small)
    lungs = anatomy.lung_mask(small, chest)
    thorax = anatomy.thorax_mask(chest)
    whole, whole_scale = (small, scale) if content == (0, h, 0, w) else shrunk(gray)
    body_box = _box(anatomy.body_mask(whole), whole_scale, gray.shape, BODY_MARGIN)
    shape = (bottom - top, right - left)
    lung_box = _box(lungs, scale, shape, MARGIN)
    if lung_box:
        lung_box = _moved(_mirrored(lung_box, _box(thorax, scale, shape, 0), shape[1]), top, left)
    return LungField(
        box=lung_box or body_box,
        body_box=body_box,
        share=float(lungs.sum() / max(1, thorax.sum())),
        levels=intensity.anchors(small, lungs, chest),
    )


def content_box(gray: np.ndarray) -> tuple:
    """(top, bottom, left, right) of the slice inside a border of one colour (a screenshot's letterbox, a figure's
    margin), else the whole slice.

    The border is no part of the slice: a lung that a tight crop cut open is as open at the border's
    inner edge as at the image's, and the crop's margin must not take in the border (re-framing would
    move P(COVID)). A border's colour is the median of the image's outermost pixels.
    """
    h, w = gray.shape
    whole = (0, h, 0, w)
    colour = int(np.median(np.r_[gray[0], gray[-1], gray[:, 0], gray[:, -1]]))
    differs = np.abs(gray.astype(np.int16) - colour) > BORDER_TOLERANCE
    rows, cols = np.flatnonzero(differs.any(axis=1)), np.flatnonzero(differs.any(axis=0))
    if rows.size == 0:
        return whole
    box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
    return box if (box[1] - box[0]) * (box[3] - box[2]) >= MIN_CONTENT * h * w else whole


def shrunk(gray, side=SIDE):
    """(a copy at most `side` px on its longer side, by INTER_AREA, its scale); training's cache shrinks with it too."""
    h, w = gray.shape
    scale = min(1.0, side / max(h, w))
    if scale == 1.0:
        return gray, scale
    return cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA), scale


def _moved(box, top, left):
    return box[0] + top, box[1] + top, box[2] + left, box[3] + left


def _mirrored(box, thorax, width):
    """The lungs' box widened to be symmetric about the thorax's middle: a lung that ground glass or
    consolidation made too bright to be found is still inside the crop when the other one was found."""
    top, bottom, left, right = box
    twice_middle = thorax[2] + thorax[3]  # x mirrored about the middle is twice_middle - x
    return top, bottom, max(0, min(left, twice_middle - right)), min(width, max(right, twice_middle - left))


def _box(mask, scale, shape, margin):
    """The mask's bounding box plus `margin` of its sides, in the full slice's pixels; None for an empty mask."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    top, bottom = rows.min() / scale, (rows.max() + 1) / scale
    left, right = cols.min() / scale, (cols.max() + 1) / scale
    my, mx = margin * (bottom - top), margin * (right - left)
    h, w = shape
    return (
        max(0, int(top - my)),
        min(h, int(np.ceil(bottom + my))),
        max(0, int(left - mx)),
        min(w, int(np.ceil(right + mx))),
    )
