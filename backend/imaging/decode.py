"""Bytes in, the grayscale slice the model sees out: uint8, transparency flattened on black."""
import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from backend.errors import ApiError
from backend.imaging import formats
from backend.imaging.dicom import WINDOWS, decode_dicom
from backend.ml.preprocess import neutralise_colour_marks

# Photos far larger than any CT slice decode at a reduced scale (JPEG draft mode): 1024 px is
# more than the 400 px output and the model's input need.
DRAFT_SIZE = (1024, 1024)


def decode_image(data: bytes, window: str = "lung", max_pixels: int = 50_000_000) -> np.ndarray:
    """Decode PNG, JPEG or DICOM bytes into a 2-D uint8 array, or raise ApiError saying what is wrong."""
    if not data:
        raise ApiError(400, "empty_file", "The uploaded file is empty.")
    if window not in WINDOWS:
        raise ApiError(400, "invalid_window", f"Unknown window '{window}'; use one of: {', '.join(WINDOWS)}.")
    kind = formats.sniff(data)
    if kind is None:
        raise ApiError(415, "unsupported_format", "The file is not a PNG, JPEG or DICOM image.")
    if kind == formats.DICOM:
        return decode_dicom(data, window, max_pixels)
    return _decode_raster(data, max_pixels)


def _decode_raster(data, max_pixels):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ApiError(413, "too_many_pixels",
                               f"The image has {width * height} pixels; this service accepts at most {max_pixels}.")
            if image.format == "JPEG":
                image.draft(None, DRAFT_SIZE)  # keeps colour: _to_gray needs it to find coloured marks
            image.load()
    except ApiError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ApiError(413, "too_many_pixels", f"The image is too large to decode safely: {exc}.") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ApiError(400, "corrupt_image", f"The image could not be decoded; it may be truncated or damaged ({exc}).") from exc
    image = ImageOps.exif_transpose(image)
    return _to_gray(image)


def _to_gray(image):
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit and float PNGs: stretch to 8 bits
        values = np.asarray(image, dtype=np.float32)
        low, high = float(values.min()), float(values.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        return np.rint((values - low) * scale).astype(np.uint8)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        rgb = np.rint(rgba[..., :3] * (rgba[..., 3:] / 255.0)).astype(np.uint8)  # composited on black
        return neutralise_colour_marks(rgb)
    if image.mode not in ("L", "1"):  # colour: annotation marks painted over (the model's preprocessing)
        return neutralise_colour_marks(np.asarray(image if image.mode == "RGB" else image.convert("RGB")))
    return np.asarray(image.convert("L"), dtype=np.uint8)
