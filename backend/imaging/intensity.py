"""One intensity scale for every input: two anchors that disease moves little, mapped to fixed gray levels.

A DICOM slice through the service's lung window (W1500/L-600), a PACS screenshot in some other lung
window and a paper's figure with its own contrast put aerated lung and soft tissue at different gray
levels. The darkest lung (5th percentile of the lung mask: air-filled alveoli, which ground glass and
consolidation leave darker than themselves) and the median of the body's non-lung tissue (muscle, fat,
mediastinum) are measured on each slice and mapped linearly to where the lung window puts them.
"""

import cv2
import numpy as np

# Where the service's lung window (W1500/L-600) puts aerated lung (about -910 HU) and soft tissue (about 0 HU).
LUNG_LEVEL, TISSUE_LEVEL = 75, 225
MIN_SPREAD = 30  # anchors closer than this (gray levels) are no measurement: the slice is left as it is


def anchors(gray: np.ndarray, lungs: np.ndarray, body: np.ndarray) -> tuple | None:
    """(aerated-lung level, soft-tissue level) of a slice from its masks, or None when they cannot be measured."""
    blurred = cv2.GaussianBlur(gray, (5, 5), 0)
    lung, tissue = blurred[lungs], blurred[body & ~lungs]
    if lung.size == 0 or tissue.size == 0:
        return None
    low, high = float(np.percentile(lung, 5)), float(np.median(tissue))
    return (low, high) if high - low >= MIN_SPREAD else None


def standardise(gray: np.ndarray, levels: tuple | None) -> np.ndarray:
    """uint8 slice with its anchors moved to LUNG_LEVEL and TISSUE_LEVEL (one linear map, clipped); unchanged
    without anchors."""
    if levels is None:
        return gray
    low, high = levels
    gain = (TISSUE_LEVEL - LUNG_LEVEL) / (high - low)
    table = np.clip(np.rint(LUNG_LEVEL + (np.arange(256) - low) * gain), 0, 255).astype(np.uint8)
    return cv2.LUT(gray, table)
