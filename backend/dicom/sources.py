"""The input's headers, made fit to be copied into results: real series are often incomplete.

A series from a scanner or an anonymiser may lack PatientName, StudyDate, even SOPInstanceUID, or
carry values highdicom refuses (a PatientSex of "U", a date that is not a date, an unknown character
set). The results copy what is usable and fill the rest as the standard allows: type 2 attributes
empty, type 1 UIDs generated, deterministically, so that writing the results again gives the same UIDs.
"""

from pydicom.charset import python_encoding
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, generate_uid
from pydicom.valuerep import DA, TM

# Patient and study attributes that are type 2 in the SR and SC IODs: present, empty when unknown.
TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)
PARSERS = {"PatientBirthDate": DA, "StudyDate": DA, "StudyTime": TM}
SEXES = ("M", "F", "O")
# Character sets pydicom can write; an input naming another is re-encoded in UTF-8 (its values are decoded).
UTF8 = "ISO_IR 192"
PIXELS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def uid(*parts) -> str:
    """A UID derived from `parts` (a study id and a role): the same parts always give the same UID."""
    return generate_uid(entropy_srcs=[str(part) for part in parts])


def reference(header: Dataset, study: dict) -> Dataset:
    """A copy of `header` without pixels whose patient and study attributes are all present and writable."""
    ds = _without_pixels(header)
    for keyword in TYPE2:
        value = ds.get(keyword)
        if value is None or not _usable(keyword, value):
            setattr(ds, keyword, "")
    ds.StudyInstanceUID = _uid_of(ds, "StudyInstanceUID") or study.get("study_uid") or uid(study["id"], "study")
    charset = ds.get("SpecificCharacterSet")
    if charset is not None and not _writable(charset):
        ds.SpecificCharacterSet = UTF8
    return ds


def source_image(header: Dataset, entry: dict, study: dict) -> Dataset:
    """`reference(header)` with the UIDs a reference to the slice `entry` (an item of the study's `slices`) needs.

    The SOP Instance UID is the study's (what its `slices` list), else the header's, else one derived
    from the series and the slice index: a reference that at least names the slice consistently.
    """
    ds = reference(header, study)
    ds.SeriesInstanceUID = _uid_of(ds, "SeriesInstanceUID") or study.get("series_uid") or uid(study["id"], "series")
    ds.SOPInstanceUID = (
        entry.get("sop_instance_uid")
        or _uid_of(ds, "SOPInstanceUID")
        or uid(ds.SeriesInstanceUID, "slice", entry["index"])
    )
    ds.SOPClassUID = _uid_of(ds, "SOPClassUID") or CTImageStorage
    if not ds.get("Modality"):
        ds.Modality = "CT"
    return ds


def _without_pixels(header: Dataset) -> Dataset:
    """A new Dataset with the header's elements (decoded with its character set), pixels left out."""
    ds = Dataset()
    for element in header:
        if element.keyword not in PIXELS:
            ds.add(element)
    return ds


def _uid_of(ds: Dataset, keyword: str) -> str:
    value = str(ds.get(keyword) or "").strip()
    return value if 0 < len(value) <= 64 else ""


def _usable(keyword: str, value) -> bool:
    try:
        if keyword in PARSERS and str(value):
            PARSERS[keyword](str(value))
        return keyword != "PatientSex" or str(value) in ("", *SEXES)
    except ValueError:
        return False


def _writable(charset) -> bool:
    values = [charset] if isinstance(charset, str) else list(charset)
    return all(not value or value in python_encoding for value in values)
