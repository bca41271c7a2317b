"""Image helpers under the names existing code calls.

"Storage" for this service is the JSON itself: images travel and are stored as base64 JPEG data
URLs. Every image is encoded once from decoded pixels in memory; nothing is decoded and
re-encoded to make a thumbnail.
"""
import base64
import binascii

import cv2
import numpy as np
from PIL import Image

from backend.errors import InvalidInput
from backend.imaging.decode import decode_image
from backend.imaging.limits import Limits


def fit_to_box(image, box=(400, 400)) -> Image.Image:
    """Scale (up or down) so the image just fits `box`, keeping its aspect ratio.

    For a square box the longer side ends up exactly box[0] pixels.
    """
    image = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    width, height = image.size
    scale = min(box[0] / width, box[1] / height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def encode_jpeg(image, quality: int) -> bytes:
    """A gray or RGB image (PIL or array) as JPEG bytes.

    OpenCV's encoder, not Pillow's: Pillow's holds the GIL while it encodes, so a slice's pictures
    drawn on one core stalled the model's pass on the other (measured: from 18 ms to over 900 ms beside
    a loop of gray encodes); OpenCV's lets go of it. Same libjpeg quality scale and 4:2:0 chroma.
    """
    if isinstance(image, Image.Image) and image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    pixels = np.asarray(image)
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"OpenCV could not encode an image of shape {pixels.shape} as JPEG")
    return jpeg.tobytes()


def to_data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def full_size_jpeg(image, box=(400, 400), quality=70) -> bytes:
    """The full-size image's JPEG: longer side 400 px, quality 70. Kept as an object as it is."""
    return encode_jpeg(fit_to_box(image, box), quality)


def upload_to_storage(image, thumbnail_size=(400, 400), quality=70) -> str:
    """The full-size image for a response: longer side 400 px, JPEG quality 70, as a data URL."""
    return to_data_url(full_size_jpeg(image, thumbnail_size, quality))


def create_thumbnail(image, size=(200, 200), quality=50) -> str:
    """The stored thumbnail: longer side 200 px, JPEG quality 50, as a data URL."""
    return to_data_url(encode_jpeg(fit_to_box(image, size), quality))


def download_image(source, window="lung", frame=None, limits=Limits()) -> np.ndarray:
    """A data URL, bare base64 or raw bytes -> the slice as the model sees it (2-D uint8)."""
    if isinstance(source, str):
        source = base64_payload(source)
    return decode_image(bytes(source), window=window, frame=frame, limits=limits)


def base64_payload(text: str) -> bytes:
    """The bytes of a data URL or bare base64 text (JSON uploads), or InvalidInput."""
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if not header.endswith(";base64"):
            raise InvalidInput("invalid_data_url")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("invalid_base64") from exc
