"""DICOM to an 8-bit slice: Hounsfield units through the modality LUT, then a display window.

Headers come from anyone: every number the decode depends on is parsed here, checked against
the pixel data and the decode budget, and refused with a 4xx before pydicom allocates pixels.
"""
import io
import logging
import math
import zlib

import numpy as np
import pydicom
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.pixels import get_decoder
from pydicom.uid import (UID, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian)

from backend.errors import InvalidInput
from backend.imaging.limits import Limits

# pydicom logs each decoder plugin's failure with a traceback. For uploads those failures are
# the client's, answered as 4xx, and nothing an operator can act on.
logging.getLogger("pydicom").setLevel(logging.CRITICAL)

# Width and level in Hounsfield units; "dicom" means the window the file carries.
WINDOWS = {
    "lung": (1500, -600),
    "mediastinal": (350, 50),
    "bone": (1800, 400),
    "dicom": None,
}
ONE_SAMPLE_PHOTOMETRICS = ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR")
MAX_FRAMES = 10_000
INFLATE_STEP = 2**20
LOOKUP_BLOCK = 2**20


def decode_dicom(data: bytes, window: str, frame: int | None, limits: Limits) -> np.ndarray:
    try:
        ds = _read(data, limits)
        return _slice(ds, window, frame, limits)
    except RecursionError as exc:  # sequences nested thousands deep
        raise InvalidInput("invalid_dicom", "It nests sequences too deeply to be read.") from exc


def _read(data, limits):
    try:
        if _transfer_syntax_of(data) == DeflatedExplicitVRLittleEndian:
            _check_inflated_size(data, limits)
        return pydicom.dcmread(io.BytesIO(data), force=True)
    except (InvalidInput, RecursionError):
        raise
    except Exception as exc:  # hostile bytes make the parser fail in many ways; all mean the same
        raise InvalidInput("invalid_dicom") from exc


def _transfer_syntax_of(data):
    fp = io.BytesIO(data)
    read_preamble(fp, force=True)
    return _read_file_meta_info(fp).get("TransferSyntaxUID")


def _check_inflated_size(data, limits):
    """Inflate in bounded steps, counting, so a deflate bomb is refused before pydicom inflates it."""
    fp = io.BytesIO(data)
    read_preamble(fp, force=True)
    _read_file_meta_info(fp)
    inflater, pending, size = zlib.decompressobj(-zlib.MAX_WBITS), data[fp.tell():], 0
    while not inflater.eof:  # bytes after the stream's end never inflate: stop there, not at the input's end
        inflated = inflater.decompress(pending, INFLATE_STEP)
        if not inflated:  # the input ran out before the stream's end; pydicom reports the damage
            return
        size += len(inflated)
        limits.check_bytes(size)
        pending = inflater.unconsumed_tail


def _slice(ds, window, frame, limits):
    if "PixelData" not in ds:
        raise InvalidInput("no_pixel_data")
    rows, cols = _number(ds, "Rows", 1, 65535), _number(ds, "Columns", 1, 65535)
    samples = _number(ds, "SamplesPerPixel", 1, 4, default=1)
    bits = _number(ds, "BitsAllocated", 1, 64)
    if samples not in (1, 3) or bits not in (1, 8, 16, 32, 64):
        raise _bad_header("SamplesPerPixel" if samples not in (1, 3) else "BitsAllocated")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2" if samples == 1 else "RGB"))
    if (samples == 1) != (photometric in ONE_SAMPLE_PHOTOMETRICS):  # e.g. frames passed off as colour channels
        raise _bad_header("SamplesPerPixel")
    _number(ds, "BitsStored", 1, bits, default=bits)
    frames = _number(ds, "NumberOfFrames", 1, MAX_FRAMES, default=1)
    index = _frame_index(frame, frames)
    limits.check(cols, rows, samples * max(bits // 8, 1) + 1)  # the decoded frame and its 8-bit slice

    syntax = _transfer_syntax(ds)
    if not syntax.is_compressed:
        _check_native_length(ds, rows * cols * samples * frames, bits)
    pixels = _decode_frame(ds, syntax, index if frames > 1 else None)
    if pixels.shape[:2] != (rows, cols):
        raise _bad_header("Rows")

    if pixels.ndim == 3:  # colour (secondary capture): luma, then treat as already displayable
        return stretch_to_uint8(pixels[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    return _to_gray(pixels, ds, window, _rescale(ds, index))


def _to_gray(pixels, ds, window, rescale):
    """Stored values -> Hounsfield units (or the file's own scale) -> a display window -> uint8."""
    if rescale is None:  # not CT (MR, secondary capture): HU presets mean nothing, so use the file's own window
        window = "dicom"
    slope, intercept = rescale or (1.0, 0.0)
    if pixels.dtype.kind == "f" and not np.isfinite(pixels).all():
        raise InvalidInput("invalid_dicom_header", "The pixel values are not finite numbers.")
    width, level = WINDOWS[window] or _file_window(ds) or _full_range(pixels, slope, intercept)
    low, invert = level - width / 2, ds.get("PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1"

    def display(stored: np.ndarray) -> np.ndarray:
        values = stored.astype(np.float32)
        values *= slope
        values += intercept
        np.clip(values, low, low + width, out=values)
        values -= low
        values *= 255.0 / width
        gray = np.rint(values, out=values).astype(np.uint8)
        return 255 - gray if invert else gray

    return _apply_per_value(pixels, display)


def _apply_per_value(pixels, display):
    """display(pixels), for 8- and 16-bit data through a table of every possible stored value,
    so a large slice never gets a float copy (the memory goal counts on it)."""
    if pixels.dtype.kind not in "iu" or pixels.itemsize > 2:
        return display(pixels)
    index_type = np.uint8 if pixels.itemsize == 1 else np.uint16
    table = display(np.arange(2 ** (8 * pixels.itemsize), dtype=index_type).view(pixels.dtype))
    flat, gray = np.ascontiguousarray(pixels).view(index_type).reshape(-1), np.empty(pixels.size, np.uint8)
    for start in range(0, flat.size, LOOKUP_BLOCK):  # blocks: indexing makes an 8-byte copy of its indices
        gray[start:start + LOOKUP_BLOCK] = table[flat[start:start + LOOKUP_BLOCK]]
    return gray.reshape(pixels.shape)


def _file_window(ds):
    """(width, level) the file carries, or None."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    return (_number(ds, "WindowWidth", 1, 1e7, whole=False, several=True),
            _number(ds, "WindowCenter", -1e7, 1e7, whole=False, several=True))


def _full_range(pixels, slope, intercept):
    """(width, level) spanning the values' own range (no window in the file)."""
    low, high = sorted(float(v) * slope + intercept for v in (pixels.min(), pixels.max()))
    return max(high - low, 1e-6), (low + high) / 2


def _number(ds, keyword, low, high, default=None, whole=True, several=False):
    """The attribute as a number within [low, high] (the first, where `several` are allowed), or InvalidInput."""
    try:
        value = ds.get(keyword, default)
        if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
            if not several:
                raise ValueError(f"{keyword} holds several values")
            value = value[0]
        number = float(value)
    except Exception as exc:  # text, empty, malformed bytes: all unusable alike
        raise _bad_header(keyword) from exc
    if not low <= number <= high or (whole and not number.is_integer()):  # NaN fails the range too
        raise _bad_header(keyword)
    return int(number) if whole else number


def _bad_header(keyword):
    return InvalidInput("invalid_dicom_header", f"Its {keyword} is missing, not a number, or does not fit the image.")


def _transfer_syntax(ds) -> UID:
    """The pixel encoding: the file meta's; for a bare data set (no Part 10 header, as older systems write
    them) the encoding it was read in, recorded in a file meta so that the pixel decoders find it."""
    syntax = (getattr(ds, "file_meta", None) or {}).get("TransferSyntaxUID")
    if syntax is None:
        implicit, little = ds.original_encoding
        syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax
    syntax = UID(str(syntax))
    if not syntax.is_transfer_syntax:
        raise InvalidInput("unsupported_transfer_syntax", f"'{syntax[:64]}' is not a DICOM transfer syntax.")
    return syntax


def _frame_index(frame, frames):
    if frame is None:
        return frames // 2
    if not 0 <= frame < frames:
        raise InvalidInput("invalid_frame", f"This file has {frames} frame(s): 0 to {frames - 1}.")
    return frame


def _check_native_length(ds, samples_total, bits):
    expected = math.ceil(samples_total * bits / 8)
    try:
        actual = len(ds.PixelData)
    except Exception as exc:
        raise InvalidInput("invalid_dicom", "Its pixel data could not be read.") from exc
    if actual not in (expected, expected + 1):  # + 1: the pad byte of an odd length
        raise InvalidInput("invalid_dicom_header",
                           f"The pixel data hold {actual} bytes, but Rows x Columns x SamplesPerPixel x "
                           f"NumberOfFrames x BitsAllocated call for {expected}.")


def _decode_frame(ds, syntax, index):
    try:
        available = get_decoder(syntax).is_available
    except NotImplementedError:
        available = False
    if not available:
        raise InvalidInput("unsupported_transfer_syntax", f"It is encoded as {syntax.name} ({syntax}).")
    try:
        return pydicom.pixels.pixel_array(ds, index=index)
    except Exception as exc:  # decoders raise many types for damaged data
        raise InvalidInput("undecodable_dicom", f"They are encoded as {syntax.name} and may be damaged.") from exc


def _rescale(ds, frame):
    """(slope, intercept) to Hounsfield units, or None when the data have no such scale.

    Enhanced multi-frame CT keeps them in the per-frame or shared functional groups, which
    pydicom's apply_rescale does not read.
    """
    sources = [ds]
    for name, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        groups = ds.get(name)
        if groups and len(groups) > index and groups[index].get("PixelValueTransformationSequence"):
            sources.append(groups[index].PixelValueTransformationSequence[0])
    for source in sources:
        if "RescaleIntercept" in source:
            slope = _number(source, "RescaleSlope", -1e6, 1e6, default=1, whole=False)
            if slope == 0:
                raise _bad_header("RescaleSlope")
            return slope, _number(source, "RescaleIntercept", -1e7, 1e7, whole=False)
    return (1.0, 0.0) if ds.get("Modality") == "CT" else None


def stretch_to_uint8(values: np.ndarray) -> np.ndarray:
    """Stretch the values' own range to 0..255 (for data with no display scale of their own)."""
    values = np.asarray(values, dtype=np.float32)
    low, high = float(values.min()), float(values.max())
    if not high > low:  # one value everywhere: the content check refuses it
        return np.zeros(values.shape, np.uint8)
    values = values - low
    values *= 255.0 / (high - low)
    return np.rint(values, out=values).astype(np.uint8)
