"""Bytes in, the grayscale slice the model sees out: uint8, transparency flattened on black.

Everything a client sends is checked before the model sees it: the format from the bytes, the
size from the header before any pixel is allocated, a complete and undamaged image stream,
and a slice worth analysing (each side at least MIN_SIDE pixels, not one value everywhere).
"""
import io
import struct
import zlib

import numpy as np
import simplejpeg
from PIL import Image, ImageOps

from backend.errors import InvalidInput
from backend.imaging import formats
from backend.imaging.dicom import WINDOWS, decode_dicom, stretch_to_uint8
from backend.imaging.limits import Limits
from backend.imaging.marks import neutralise_colour_marks

# The smallest side worth analysing: below the smallest real slice of the training data (a 53 x 26
# figure crop), far above 1 x 1 and other images that hold no slice.
MIN_SIDE = 24
# Photos far larger than any CT slice decode at a reduced scale (JPEG DCT scaling): 1024 px is
# more than the 400 px output and the model's input need.
JPEG_MIN_DECODED_SIDE = 1024
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type
_ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
ROWS_PER_BLOCK = 256
# Bytes per sample of Pillow's modes that are not 8-bit.
_WIDE_MODES = {"I;16": 2, "I;16B": 2, "I;16L": 2, "I": 4, "F": 4}


def decode_image(data: bytes, window: str = "lung", frame: int | None = None, limits: Limits = Limits()) -> np.ndarray:
    """Decode PNG, JPEG or DICOM bytes into a 2-D uint8 array, or raise InvalidInput saying what is wrong."""
    if not data:
        raise InvalidInput("empty_file")
    if window not in WINDOWS:
        raise InvalidInput("invalid_window")
    kind = formats.sniff(data)
    if kind is None:
        raise InvalidInput("unsupported_format")
    if kind == formats.DICOM:
        gray = decode_dicom(data, window, frame, limits)
    else:
        if frame not in (None, 0):
            raise InvalidInput("invalid_frame")
        gray = _decode_jpeg(data, limits) if kind == formats.JPEG else _decode_png(data, limits)
    _check_content(gray)
    return gray


def _decode_png(data, limits):
    try:
        image = Image.open(io.BytesIO(data), formats=["PNG"])
        limits.check(*image.size, len(image.getbands()) * _WIDE_MODES.get(image.mode, 1))
        image.verify()  # every chunk's CRC, through IEND: damaged files are refused, never half-read
        _check_png_rows(data)
        image = Image.open(io.BytesIO(data), formats=["PNG"])
        image.load()
    except InvalidInput:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own guard, for sizes far past MAX_PIXELS
        raise InvalidInput("too_many_pixels") from exc
    except (OSError, SyntaxError, ValueError, struct.error, zlib.error) as exc:
        raise _corrupt() from exc
    return _to_gray(ImageOps.exif_transpose(image))


def _check_png_rows(data):
    """The image data must inflate to every row the header promises: Pillow pads a short stream
    with zeros (a file cut inside its compressed data, with its end chunk put back)."""
    width, height, depth, colour, _, _, interlaced = struct.unpack(">IIBBBBB", data[16:29])
    bits_per_pixel = depth * _PNG_CHANNELS.get(colour, 1)
    passes = _ADAM7 if interlaced else [(0, 0, 1, 1)]
    expected = sum(rows * (1 + -(-cols * bits_per_pixel // 8))
                   for x0, y0, dx, dy in passes
                   for cols, rows in [(-(-(width - x0) // dx), -(-(height - y0) // dy))] if cols > 0 and rows > 0)
    inflater, offset, inflated = zlib.decompressobj(), 8, 0
    while offset + 8 <= len(data) and inflated < expected and not inflater.eof:
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind == b"IDAT":
            inflated += len(inflater.decompress(data[offset + 8:offset + 8 + length], expected - inflated))
        offset += 12 + length
    if inflated < expected:
        raise ValueError("the image data end before the last row")


def _decode_jpeg(data, limits):
    """libjpeg-turbo in strict mode: a truncated or damaged stream is an error, never a grey fill."""
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        grey = colorspace == "Gray"  # colour is kept: coloured annotation marks are found in it
        limits.check(width, height, 1 if grey else 3)
        pixels = simplejpeg.decode_jpeg(data, colorspace="GRAY" if grey else "RGB", strict=True,
                                        min_width=JPEG_MIN_DECODED_SIDE, min_height=JPEG_MIN_DECODED_SIDE)
        orientation = Image.open(io.BytesIO(data), formats=["JPEG"]).getexif()  # the header only
    except InvalidInput:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise _corrupt() from exc
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    image.getexif().update(orientation)
    return _to_gray(ImageOps.exif_transpose(image))


def _corrupt():
    return InvalidInput("corrupt_image")


def _to_gray(image):
    if image.mode in _WIDE_MODES:  # 16-bit and float PNGs: stretch to 8 bits
        return stretch_to_uint8(np.asarray(image, dtype=np.float32))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        return neutralise_colour_marks(_composite_on_black(np.asarray(image.convert("RGBA"))))
    if image.mode not in ("L", "1"):  # colour: annotation marks painted over (the model's preprocessing)
        return neutralise_colour_marks(np.asarray(image if image.mode == "RGB" else image.convert("RGB")))
    return np.asarray(image.convert("L"), dtype=np.uint8)


def _composite_on_black(rgba: np.ndarray) -> np.ndarray:
    """RGB times alpha, in float32 as the model was trained, a block of rows at a time: a whole
    4096 x 4096 image in float32 would take 256 MiB."""
    rgb = np.empty((*rgba.shape[:2], 3), np.uint8)
    for top in range(0, rgba.shape[0], ROWS_PER_BLOCK):
        block = rgba[top:top + ROWS_PER_BLOCK].astype(np.float32)
        rgb[top:top + ROWS_PER_BLOCK] = np.rint(block[..., :3] * (block[..., 3:] / 255.0))
    return rgb


def _check_content(gray):
    height, width = gray.shape
    if min(height, width) < MIN_SIDE:
        raise InvalidInput("image_too_small", f"This one is {width}x{height}.", minimum=MIN_SIDE)
    if gray.min() == gray.max():
        raise InvalidInput("blank_image")
