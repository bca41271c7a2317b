"""Body and lung masks of an axial chest slice, from 8-bit intensities alone.

The same rules must hold for a Hounsfield-unit slice shown through the lung window, a PACS screenshot
and a figure cropped from a paper, none of which carries HU: the body is the largest bright region
(Otsu) with its holes filled; the thorax is the chest's convex hull (a figure cropped inside the
chest wall has no closed ring of tissue around the lungs); the lungs are the large dark regions inside
the thorax.
"""

import cv2
import numpy as np

MIN_BODY_FRACTION = 0.05  # below this the "body" is noise: fall back to the whole slice
# A pixel is lung below this point between the aerated-lung level (10th percentile of the thorax's dark
# pixels) and the tissue level (median of the body's bright ones): in the lung window about -350 HU, so
# ground glass (-700 to -400 HU) still counts as lung, consolidation does not.
LUNG_SPLIT = 0.6
MIN_LUNG_PART = 0.01  # of the thorax's area: smaller dark regions (trachea, specks of bowel gas) are not lung
OPEN_LUNG_PART = 0.2  # of the dark regions' area: a region open to the image's edge is lung only when this large
MIN_PIECE = 0.05  # of the largest bright region's area: a piece of chest wall at the image's edge, not a table
# A region this close to the image's edge (pixels, on the lung finder's copy of at most 256 px) is cut open by it:
# blurring and a screenshot's one-pixel frame leave a lung that a crop cut open a pixel or two short of the edge.
EDGE = 2
_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))


def body_mask(gray: np.ndarray) -> np.ndarray:
    """The largest bright region with its holes filled: where the heatmap is drawn, and the body box that models
    before 3.0.0 crop to (kept as it was, so they still reproduce)."""
    blurred = cv2.GaussianBlur(gray, (5, 5), 0)
    _, bright = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    if count < 2:
        return np.ones(gray.shape, bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    body = fill_holes(labels == largest)
    return body if body.mean() >= MIN_BODY_FRACTION else np.ones(gray.shape, bool)


def chest_mask(gray: np.ndarray) -> np.ndarray:
    """The body as the lung finder needs it: the largest bright region, with the pieces of chest wall a crop cut off
    from it, holes filled.

    A thin opening first cuts the body from the scanner's table; a piece counts when it touches the
    image's edge and is at least MIN_PIECE of the largest region (a table or a stray label is smaller).
    """
    blurred = cv2.GaussianBlur(gray, (5, 5), 0)
    _, bright = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = cv2.morphologyEx(bright, cv2.MORPH_OPEN, _KERNEL)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    if count < 2:
        return np.ones(gray.shape, bool)
    areas = stats[:, cv2.CC_STAT_AREA]
    largest = 1 + int(np.argmax(areas[1:]))
    pieces = [
        i
        for i in range(1, count)
        if i == largest or (areas[i] >= MIN_PIECE * areas[largest] and _touches_edge(stats[i], gray.shape))
    ]
    body = fill_holes(np.isin(labels, pieces))
    return body if body.mean() >= MIN_BODY_FRACTION else np.ones(gray.shape, bool)


def thorax_mask(body: np.ndarray) -> np.ndarray:
    """The body's convex hull: also holds lungs that a tight crop left open to the image's edge."""
    contours, _ = cv2.findContours(body.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = np.zeros(body.shape, np.uint8)
    if contours:
        cv2.fillPoly(hull, [cv2.convexHull(np.vstack(contours))], 1)
    return hull.astype(bool)


def lung_mask(gray: np.ndarray, body: np.ndarray) -> np.ndarray:
    """The lungs: dark regions of at least MIN_LUNG_PART of the thorax (`body`: `chest_mask`'s, or `body_mask`'s),
    holes (vessels, nodules) filled.

    A region the body encloses is lung. One open to the image's edge is lung only when it is large
    (at least OPEN_LUNG_PART of the dark area: a lung a tight crop cut open); smaller ones are the air
    between the body and the edge of the field of view. Empty when no lung is found.
    """
    blurred = cv2.GaussianBlur(gray, (5, 5), 0)
    thorax = thorax_mask(body)
    otsu, _ = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark, bright = blurred[thorax & (blurred <= otsu)], blurred[body & (blurred > otsu)]
    if dark.size == 0 or bright.size == 0:
        return np.zeros(gray.shape, bool)
    aerated = np.percentile(dark, 10)
    level = aerated + LUNG_SPLIT * (np.median(bright) - aerated)
    candidates = cv2.morphologyEx(((blurred <= level) & thorax).astype(np.uint8), cv2.MORPH_OPEN, _KERNEL)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidates, connectivity=8)
    areas = stats[:, cv2.CC_STAT_AREA]
    parts = [i for i in range(1, count) if areas[i] >= MIN_LUNG_PART * thorax.sum()]
    total = areas[parts].sum()
    lungs = [
        i
        for i in parts
        if body[labels == i].mean() > 0.9
        or (_touches_edge(stats[i], gray.shape) and areas[i] >= OPEN_LUNG_PART * total)
    ]
    return fill_holes(np.isin(labels, lungs))


def _touches_edge(stat, shape) -> bool:
    left, top, width, height = stat[:4]
    return left <= EDGE or top <= EDGE or left + width >= shape[1] - EDGE or top + height >= shape[0] - EDGE


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Everything not reachable from the border through background belongs to the region."""
    padded = np.pad(mask.astype(np.uint8), 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    return ((padded | (1 - flood)) > 0)[1:-1, 1:-1]
