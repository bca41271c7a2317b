"""The one preprocessing step shared by training and serving: slice -> normalised model input."""
import cv2
import numpy as np
import torch

INPUT_SIZE = 224
LABELS = ("COVID", "NonCOVID")


def to_input(gray: np.ndarray) -> torch.Tensor:
    """A 2-D uint8 slice -> a (1, INPUT_SIZE, INPUT_SIZE) float tensor in [-1, 1].

    The whole slice is resized (no crop), so the class activation map covers the whole slice
    and maps back onto it with a plain resize.
    """
    resized = cv2.resize(gray, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(resized).float().div_(127.5).sub_(1.0).unsqueeze(0)
