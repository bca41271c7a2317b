"""Rough body and lung-field masks of an axial chest slice, to place and size the activation.

Figure crops carry no Hounsfield units, so this works on 8-bit intensities: the body is the
largest bright region (Otsu), the lung field the dark areas enclosed by it.
"""
import cv2
import numpy as np

MIN_BODY_FRACTION = 0.05  # below this the "body" is noise: fall back to the whole slice


def body_mask(gray: np.ndarray) -> np.ndarray:
    blurred = cv2.GaussianBlur(gray, (5, 5), 0)
    _, bright = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    if count < 2:
        return np.ones(gray.shape, bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    body = _fill_holes((labels == largest).astype(np.uint8))
    return body if body.mean() >= MIN_BODY_FRACTION else np.ones(gray.shape, bool)


def lung_mask(gray: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Dark regions inside the body, without specks; the body itself when none are found."""
    blurred = cv2.GaussianBlur(gray, (5, 5), 0)
    inside = blurred[body]
    threshold, _ = cv2.threshold(inside.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark = ((blurred < threshold) & body).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    dark = cv2.morphologyEx(dark, cv2.MORPH_OPEN, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    keep = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= 0.01 * body.sum()]
    lungs = np.isin(labels, keep)
    return lungs if lungs.any() else body


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Everything not reachable from the border through background belongs to the region."""
    padded = np.pad(mask, 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    return ((padded | (1 - flood)) > 0)[1:-1, 1:-1]
