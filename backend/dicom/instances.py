"""A received instance, read from its bytes before anything is stored: is it a whole CT image, and which one.

The same check serves C-STORE and STOW-RS; each answers a refusal with its own status (`Refused.kind`).
pydicom reads a file cut short without complaint (the pixel data just come out shorter, or missing),
so the pixel data are measured against what the header says they must hold.
"""

import hashlib
import io
from dataclasses import dataclass

import pydicom
from pydicom.encaps import generate_fragments
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import (
    UID,
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
    RLELossless,
)

CT_CLASSES = (CTImageStorage, EnhancedCTImageStorage)
# What the decoders read (backend/imaging/dicom.py and its plugins). Not Deflated: pydicom inflates a whole data
# set before anything can be checked, so a small deflate bomb would fill memory; nor video and JPIP.
TRANSFER_SYNTAXES = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    RLELossless,
    *JPEGTransferSyntaxes,
    *JPEGLSTransferSyntaxes,
    *JPEG2000TransferSyntaxes,
)
UNREADABLE, NOT_CT, SYNTAX = "unreadable", "not_ct", "syntax"


class Refused(Exception):
    """The instance is not stored: `kind` is UNREADABLE (damaged, cut short), NOT_CT or SYNTAX (an encoding not
    accepted)."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True)
class Instance:
    data: bytes  # the DICOM file as received (preamble, file meta, data set)
    sop_class_uid: str
    sop_instance_uid: str  # the data set's, else the file meta's (the C-STORE request's), else ""
    study_uid: str
    series_uid: str
    sha256: str


def read(data: bytes) -> Instance:
    """The instance in `data`; Refused unless it is a whole CT Image or Enhanced CT Image in an accepted encoding."""
    syntax = _transfer_syntax(data)
    if syntax and syntax not in TRANSFER_SYNTAXES:
        raise Refused(SYNTAX, f"its transfer syntax {UID(syntax).name or syntax!r} is not one this service accepts")
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        for _ in ds.iterall():  # every element decoded now: a damaged one fails here, not later
            pass
        meta = getattr(ds, "file_meta", None) or pydicom.Dataset()
        sop_class = str(ds.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID") or "").strip()
    except Exception as exc:  # hostile bytes make the parser fail in many ways; all mean the same
        raise Refused(UNREADABLE, f"it cannot be read as DICOM ({type(exc).__name__})") from exc
    if not sop_class:
        raise Refused(UNREADABLE, "it names no SOP class (not DICOM, or cut short before its header ends)")
    if sop_class not in CT_CLASSES:
        raise Refused(NOT_CT, f"its SOP class {UID(sop_class).name or sop_class!r} is not CT Image Storage")
    _check_pixels(ds)
    return Instance(
        data=data,
        sop_class_uid=sop_class,
        sop_instance_uid=str(ds.get("SOPInstanceUID") or meta.get("MediaStorageSOPInstanceUID") or ""),
        study_uid=str(ds.get("StudyInstanceUID") or ""),
        series_uid=str(ds.get("SeriesInstanceUID") or ""),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _transfer_syntax(data: bytes) -> str:
    """The file meta's transfer syntax, read alone, as backend/imaging/dicom.py reads it ("" without file meta)."""
    try:
        fp = io.BytesIO(data)
        read_preamble(fp, force=True)
        return str(_read_file_meta_info(fp).get("TransferSyntaxUID") or "").strip()
    except Exception:  # no file meta to speak of: the full read decides
        return ""


def _check_pixels(ds):
    if "PixelData" not in ds:
        raise Refused(UNREADABLE, "it has no pixel data (cut short, or not an image)")
    try:
        pixels = ds.PixelData
        if ds.file_meta.TransferSyntaxUID.is_encapsulated:
            if not any(True for _ in generate_fragments(pixels)):
                raise ValueError("no fragments")
        elif len(pixels) not in (expected := get_expected_length(ds, "bytes"), expected + 1):
            raise ValueError(f"{len(pixels)} bytes of pixel data where the header calls for {expected}")
    except Exception as exc:
        raise Refused(UNREADABLE, f"its pixel data are incomplete or damaged: {exc}") from exc
