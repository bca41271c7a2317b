"""DICOM to an 8-bit slice: Hounsfield units through the modality LUT, then a display window."""
import io

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_voi_lut

from backend.errors import ApiError

# Width and level in Hounsfield units; "dicom" means the window the file carries.
WINDOWS = {
    "lung": (1500, -600),
    "mediastinal": (350, 50),
    "bone": (1800, 400),
    "dicom": None,
}


def decode_dicom(data: bytes, window: str, max_pixels: int) -> np.ndarray:
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except (InvalidDicomError, EOFError, ValueError, OSError) as exc:
        raise ApiError(400, "invalid_dicom", f"The file looks like DICOM but could not be read: {exc}.") from exc
    if "PixelData" not in ds:
        raise ApiError(400, "no_pixel_data", "The DICOM file holds no image (it has no Pixel Data element).")
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    if rows * cols == 0:
        raise ApiError(400, "invalid_dicom", "The DICOM file gives no image size (Rows and Columns).")
    if rows * cols > max_pixels:
        raise ApiError(413, "too_many_pixels", f"The image has {rows * cols} pixels; this service accepts at most {max_pixels}.")

    frames = int(ds.get("NumberOfFrames", 1) or 1)
    middle = frames // 2
    try:
        pixels = pydicom.pixels.pixel_array(ds, index=middle if frames > 1 else None)
    except Exception as exc:  # decoders raise many types for damaged or unsupported data
        raise ApiError(400, "undecodable_dicom", f"The DICOM pixel data could not be decoded: {exc}.") from exc

    if pixels.ndim == 3:  # colour (secondary capture): luma, then treat as already displayable
        return _to_uint8(pixels[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))

    rescale = _rescale(ds, middle)
    if rescale is not None:
        slope, intercept = rescale
        values = _window(pixels.astype(np.float32) * slope + intercept, ds, window)
    else:  # not CT (MR, secondary capture): HU presets mean nothing, so use the file's own window
        values = _window(pixels.astype(np.float32), ds, "dicom")
    if ds.get("PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        values = 255 - values
    return values


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
            return float(source.get("RescaleSlope", 1) or 1), float(source.RescaleIntercept)
    return (1.0, 0.0) if ds.get("Modality") == "CT" else None


def _window(values, ds, window):
    preset = WINDOWS[window]
    if preset is None:
        if "WindowCenter" in ds and "WindowWidth" in ds:
            return _to_uint8(apply_voi_lut(values, ds, prefer_lut=False))
        return _to_uint8(values)  # no window in the file: the full range
    width, level = preset
    low = level - width / 2
    scaled = (np.clip(values, low, low + width) - low) * (255.0 / width)
    return np.rint(scaled).astype(np.uint8)


def _to_uint8(values):
    """Stretch the values' own range to 0..255 (for data with no Hounsfield scale)."""
    values = np.asarray(values, dtype=np.float32)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, np.uint8)
    return np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8)
