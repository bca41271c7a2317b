"""Training augmentation. Serving never calls this.

`augment` (models before 3.0.0): the body crop of a decoded slice, before it is resized and scaled as
`to_input` does; fits CT figure crops: small rotations, crops and scales, flips, intensity/contrast/gamma
jitter, blur and JPEG artefacts.

`augment_slice` (3.0.0): the whole decoded slice, before `preprocess.prepare` finds its lung field, so the
crop and the intensity anchors are measured on the perturbed slice as serving measures them on an upload.
It adds what separates the sources from each other: framing, other windows (contrast and gamma),
resolution, scanner noise and JPEG.
"""

import cv2
import numpy as np

from backend.imaging import lungfield

# Slices are shrunk once to at most this side before caching: well above the 224 px input,
# and it keeps per-epoch augmentation cheap on CPU.
CACHE_SIDE = 448


def shrink(gray):
    """Downscale (INTER_AREA, as `to_input` shrinks) so the longer side is at most CACHE_SIDE."""
    return lungfield.shrunk(gray, CACHE_SIDE)[0]


def augment(gray: np.ndarray, rng: np.random.Generator, blur_p=0.3, jpeg_p=0.3) -> np.ndarray:
    """A randomly perturbed copy of a 2-D uint8 slice (any size), uint8 (ctnet-covid 1.0.0's augmentation)."""
    out = _random_crop(gray, rng, scale=(0.7, 1.0), ratio=(0.8, 1.25))
    out = _rotate(out, rng.uniform(-10, 10))
    if rng.random() < 0.5:
        out = out[:, ::-1]
    out = _intensity(out, rng)
    return _blur_and_jpeg(out, rng, blur_p, jpeg_p)


def augment_slice(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A randomly perturbed copy of a whole 2-D uint8 slice, uint8: re-framed, rotated, flipped, another window,
    another resolution, noise, blur, JPEG."""
    out = _random_crop(gray, rng, scale=(0.75, 1.0), ratio=(0.85, 1.18))
    out = _rotate(out, rng.uniform(-10, 10))
    if rng.random() < 0.5:
        out = out[:, ::-1]
    out = _intensity(out, rng, contrast=(0.75, 1.33), gamma=(0.75, 1.33))
    if rng.random() < 0.3:  # a lower resolution (a small figure, a thick slab), then back to this size
        h, w = out.shape
        factor = rng.uniform(0.35, 0.9)
        small = cv2.resize(out, (max(8, round(w * factor)), max(8, round(h * factor))), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.3:  # quantum noise of a thin-slice scan
        out = np.clip(out + rng.normal(0, rng.uniform(2, 8), out.shape), 0, 255).astype(np.uint8)
    return _blur_and_jpeg(out, rng, 0.3, 0.3)


def _blur_and_jpeg(gray, rng, blur_p, jpeg_p):
    if rng.random() < blur_p:
        gray = cv2.GaussianBlur(gray, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < jpeg_p:
        _, encoded = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 91))])
        gray = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
    return np.ascontiguousarray(gray)


def _random_crop(gray, rng, scale, ratio):
    h, w = gray.shape
    area = h * w * rng.uniform(*scale)
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
    ch = int(min(h, max(8, round(np.sqrt(area / aspect)))))
    cw = int(min(w, max(8, round(np.sqrt(area * aspect)))))
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return gray[top : top + ch, left : left + cw]


def _rotate(gray, degrees):
    h, w = gray.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(
        np.ascontiguousarray(gray), matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def _intensity(gray, rng, contrast=(0.8, 1.25), gamma=(0.8, 1.25)):
    """Contrast, brightness and gamma as one lookup table."""
    x = np.arange(256, dtype=np.float32) / 255.0
    x = np.clip((x - 0.5) * rng.uniform(*contrast) + 0.5 + rng.uniform(-0.08, 0.08), 0, 1)
    x = x ** rng.uniform(*gamma)
    return cv2.LUT(gray, np.rint(x * 255).astype(np.uint8))
