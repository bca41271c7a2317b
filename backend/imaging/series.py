"""DICOM files -> one series in slice order, from their headers alone (pixels are never read here).

Files are grouped by SeriesInstanceUID; the series analysed is the one asked for, else the CT series with
the most slices; the others are described in `skipped_series`. Slices are ordered by their position
along the slice normal (ImagePositionPatient projected on the cross product of ImageOrientationPatient's
row and column directions), else by SliceLocation, else by InstanceNumber; never by file name. Real
series are often incomplete: a missing or empty SOPInstanceUID, no PatientName, UIDs that are not
standard are all accepted; what no key can order is refused.
"""
import io
import math
from dataclasses import dataclass, field

import pydicom

from backend.errors import InvalidInput
from backend.imaging import formats
from backend.imaging.archive import Member, NestedArchive, StudyLimits, Upload

MAX_UID = 64


@dataclass
class Header:
    """What ordering and grouping need from one file's header."""

    series_uid: str
    study_uid: str
    sop_uid: str
    modality: str
    series_description: str
    instance_number: int | None
    position: tuple | None  # ImagePositionPatient (mm)
    orientation: tuple | None  # ImageOrientationPatient (row and column direction cosines)
    slice_location: float | None
    rows: int | None
    columns: int | None


@dataclass
class Slice:
    member: Member
    header: Header
    z: float | None = None  # position along the slice normal (mm), or SliceLocation; None when ordered otherwise


@dataclass
class Series:
    """The chosen series, its slices in order, and what else the upload held."""

    series_uid: str
    study_uid: str
    modality: str
    description: str
    slices: list[Slice]
    skipped_series: list[dict] = field(default_factory=list)  # {series_uid, modality, slices, reason}
    ordered_by: str = ""


def read_header(data: bytes) -> Header | None:
    """The header of a DICOM image file; None when the bytes are not DICOM or hold no image."""
    if formats.sniff(data) != formats.DICOM:
        return None
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
    except Exception:  # hostile or damaged headers fail in many ways; all mean "not a usable DICOM file"
        return None
    rows, columns = _number(ds, "Rows", int), _number(ds, "Columns", int)
    if rows is None or columns is None:  # a DICOMDIR, a report, a presentation state: no image
        return None
    return Header(
        series_uid=_text(ds, "SeriesInstanceUID")[:MAX_UID * 2], study_uid=_text(ds, "StudyInstanceUID")[:MAX_UID * 2],
        sop_uid=_text(ds, "SOPInstanceUID")[:MAX_UID * 2], modality=_text(ds, "Modality").upper()[:16],
        series_description=_text(ds, "SeriesDescription")[:128], instance_number=_number(ds, "InstanceNumber", int),
        position=_vector(ds, "ImagePositionPatient", 3), orientation=_vector(ds, "ImageOrientationPatient", 6),
        slice_location=_number(ds, "SliceLocation", float), rows=rows, columns=columns)


def _text(ds, keyword) -> str:
    try:
        value = ds.get(keyword)
        return "" if value is None else str(value).strip().strip("\x00")
    except Exception:
        return ""


def _number(ds, keyword, kind):
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        number = float(value)
        if not math.isfinite(number) or (kind is int and not number.is_integer()):
            return None
        return kind(number)
    except Exception:
        return None


def _vector(ds, keyword, length):
    try:
        values = tuple(float(v) for v in ds.get(keyword) or ())
    except Exception:
        return None
    return values if len(values) == length and all(math.isfinite(v) for v in values) else None


def plan(upload: Upload, limits: StudyLimits, series_uid: str | None = None) -> Series:
    """Read every member's header once; choose, check and order the series to analyse."""
    groups: dict[str, list[Slice]] = {}
    images = 0
    for member in upload.members:
        try:
            data = member.read()
        except NestedArchive:
            upload.skip(member.name, "nested archive (not opened)")
            continue
        header = read_header(data)
        del data
        if header is None:
            upload.skip(member.name, "not a DICOM image")
            continue
        images += 1
        if images > limits.max_slices:
            raise InvalidInput("too_many_slices", maximum=limits.max_slices)
        groups.setdefault(header.series_uid, []).append(Slice(member, header))
    if not groups:
        raise InvalidInput("no_dicom")
    chosen = _choose(groups, series_uid)
    slices = groups[chosen]
    sizes = {(s.header.rows, s.header.columns) for s in slices}
    if len(sizes) > 1:
        found = ", ".join(f"{c}x{r}" for r, c in sorted(sizes))
        raise InvalidInput("mixed_slice_sizes", f"This one has slices of {found}.")
    ordered, ordered_by = order(slices)
    first = ordered[0].header
    skipped = [{"series_uid": uid, "modality": group[0].header.modality, "slices": len(group),
                "reason": _why_not(group, series_uid)} for uid, group in groups.items() if uid != chosen]
    return Series(chosen, first.study_uid, first.modality, first.series_description, ordered,
                  sorted(skipped, key=lambda s: -s["slices"]), ordered_by)


def _is_ct(group: list[Slice]) -> bool:
    """CT, or no modality at all (stripped by an anonymiser): analysed as CT."""
    return group[0].header.modality in ("CT", "")


def _choose(groups: dict[str, list[Slice]], wanted: str | None) -> str:
    if wanted is not None:
        if wanted not in groups:
            raise InvalidInput("unknown_series", f"It holds {len(groups)} series.")
        if not _is_ct(groups[wanted]):
            raise InvalidInput("not_ct", f"Series {wanted[:MAX_UID]} is {groups[wanted][0].header.modality}.")
        return wanted
    ct = [uid for uid, group in groups.items() if _is_ct(group)]
    if not ct:
        found = sorted({group[0].header.modality for group in groups.values()})
        raise InvalidInput("not_ct", f"The upload holds {', '.join(found)} series only.")
    return max(ct, key=lambda uid: len(groups[uid]))


def _why_not(group: list[Slice], wanted: str | None) -> str:
    if not _is_ct(group):
        return f"not CT ({group[0].header.modality})"
    return "not the series asked for" if wanted is not None else "fewer slices than the series analysed"


def order(slices: list[Slice]) -> tuple[list[Slice], str]:
    """The slices in position order and the key that ordered them: "position" (along the slice normal, z in mm),
    "slice_location" (z in mm) or "instance_number" (no z)."""
    headers = [s.header for s in slices]
    if all(h.position and h.orientation for h in headers):
        normal = _normal(headers[0].orientation)
        if normal is not None:
            for s in slices:
                s.z = sum(p * n for p, n in zip(s.header.position, normal, strict=True))
            return sorted(slices, key=lambda s: (s.z, s.header.instance_number or 0)), "position"
    if all(h.slice_location is not None for h in headers):
        for s in slices:
            s.z = s.header.slice_location
        return sorted(slices, key=lambda s: (s.z, s.header.instance_number or 0)), "slice_location"
    if all(h.instance_number is not None for h in headers):
        return sorted(slices, key=lambda s: s.header.instance_number), "instance_number"
    raise InvalidInput("unordered_series")


def _normal(orientation):
    """The unit slice normal: the row direction cross the column direction; None when degenerate."""
    r, c = orientation[:3], orientation[3:]
    n = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    length = math.sqrt(sum(v * v for v in n))
    return tuple(v / length for v in n) if length > 1e-6 else None
