"""Training augmentation of the body crop of a decoded slice, before it is resized and scaled as `to_input` does.

Fits CT figure crops: small rotations, crops and scales, flips, intensity/contrast/gamma
jitter, blur and JPEG artefacts. Serving never calls this.
"""
import cv2
import numpy as np

# Slices are shrunk once to at most this side before caching: well above the 224 px input,
# and it keeps per-epoch augmentation cheap on CPU.
CACHE_SIDE = 448


def shrink(gray):
    """Downscale (INTER_AREA, as `to_input` does) so the longer side is at most CACHE_SIDE."""
    h, w = gray.shape
    scale = CACHE_SIDE / max(h, w)
    if scale >= 1:
        return gray
    return cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def augment(gray: np.ndarray, rng: np.random.Generator, blur_p=0.3, jpeg_p=0.3) -> np.ndarray:
    """A randomly perturbed copy of a 2-D uint8 slice (any size), uint8 (ctnet-covid 1.0.0's augmentation)."""
    out = _random_crop(gray, rng, scale=(0.7, 1.0), ratio=(0.8, 1.25))
    out = _rotate(out, rng.uniform(-10, 10))
    if rng.random() < 0.5:
        out = out[:, ::-1]
    out = _intensity(out, rng)
    if rng.random() < blur_p:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < jpeg_p:
        ok, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 91))])
        out = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
    return np.ascontiguousarray(out)


def _random_crop(gray, rng, scale, ratio):
    h, w = gray.shape
    area = h * w * rng.uniform(*scale)
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
    ch = int(min(h, max(8, round(np.sqrt(area / aspect)))))
    cw = int(min(w, max(8, round(np.sqrt(area * aspect)))))
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return gray[top:top + ch, left:left + cw]


def _rotate(gray, degrees):
    h, w = gray.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(np.ascontiguousarray(gray), matrix, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def _intensity(gray, rng):
    """Contrast, brightness and gamma as one lookup table."""
    x = np.arange(256, dtype=np.float32) / 255.0
    x = np.clip((x - 0.5) * rng.uniform(0.8, 1.25) + 0.5 + rng.uniform(-0.08, 0.08), 0, 1)
    x = x ** rng.uniform(0.8, 1.25)
    return cv2.LUT(gray, np.rint(x * 255).astype(np.uint8))
