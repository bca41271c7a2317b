"""The class activation map as a picture: upsampled, ReLU'd, normalised, JET, blended on the slice."""

import cv2
import numpy as np

BLEND_ALPHA = 0.4


def activation_map(cam: np.ndarray, shape: tuple, body: np.ndarray) -> np.ndarray:
    """Raw CAM -> float32 map in [0, 1] of `shape`, zero outside the body."""
    upsampled = cv2.resize(cam.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    activation = np.maximum(upsampled, 0) * body
    peak = float(activation.max())
    return activation / peak if peak > 0 else activation


def overlay(gray: np.ndarray, activation: np.ndarray, body: np.ndarray, alpha: float = BLEND_ALPHA) -> np.ndarray:
    """RGB uint8: the JET-coloured activation blended over the slice inside the body, the plain slice outside."""
    colours = cv2.cvtColor(
        cv2.applyColorMap(np.rint(activation * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB
    )
    slice_rgb = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    blended = cv2.addWeighted(slice_rgb, 1 - alpha, colours, alpha, 0)
    return np.where(body[..., None], blended, slice_rgb)
