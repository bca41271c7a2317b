"""STOW-RS (PS3.18 10.5) on the wire: multipart/related bodies of DICOM files, and the Store Instances Response.

Both directions live here: the listener side splits a request body into its DICOM files and answers
in DICOM JSON; the sending side (send.py) builds a body for a PACS. The parts are split by hand at
the boundary: werkzeug parses multipart/form-data only, and the email package turns every bare LF of
a binary part into CRLF (tests/test_dicomweb.py); the body is already in memory, capped by MAX_UPLOAD_MB. The answer
is a pydicom Dataset written as DICOM JSON by pydicom. It carries no RetrieveURL: this service keeps
what it receives for its own analysis and serves no WADO-RS to retrieve it from.
"""

import io
import re
import uuid
from dataclasses import dataclass
from email.message import Message

import pydicom
from pydicom.dataset import Dataset

from backend.dicom import instances
from backend.errors import InvalidInput

# Failure Reasons (PS3.18 Table 10.5.3-4, PS3.4 B.2.3); STUDY_MISMATCH is the Cxxx "cannot understand" that
# dcm4chee and others answer for an instance of another study than the URL names.
OUT_OF_RESOURCES, SOP_CLASS_NOT_SUPPORTED, CANNOT_UNDERSTAND, STUDY_MISMATCH = 0xA700, 0x0122, 0xC000, 0xC409
SYNTAX_NOT_SUPPORTED, PROCESSING_FAILURE = 0xC122, 0x0110
FAILURE = {
    instances.UNREADABLE: CANNOT_UNDERSTAND,
    instances.NOT_CT: SOP_CLASS_NOT_SUPPORTED,
    instances.SYNTAX: SYNTAX_NOT_SUPPORTED,
}
DICOM = "application/dicom"
CRLF = b"\r\n"


@dataclass(frozen=True)
class Outcome:
    """What became of one instance of a request: stored (`failure` None) or not, with its Failure Reason."""

    sop_class_uid: str
    sop_instance_uid: str
    failure: int | None = None


def parts(content_type: str, body: bytes) -> list[bytes]:
    """The DICOM files of a STOW-RS request body, in order (InvalidInput for a body that is not one)."""
    header = Message()
    header["Content-Type"] = content_type or ""
    related_type = (header.get_param("type") or "").lower()
    if header.get_content_type() != "multipart/related" or related_type not in ("", DICOM):
        raise InvalidInput("unsupported_media_type")
    boundary = header.get_param("boundary")
    if not boundary or not isinstance(boundary, str):
        raise InvalidInput("invalid_multipart", "The Content-Type has no boundary.")
    delimiter = b"--" + boundary.encode("latin-1")
    found = []
    for chunk in _between_delimiters(body, delimiter):
        head, separator, content = (b"", CRLF, chunk[2:]) if chunk.startswith(CRLF) else chunk.partition(CRLF + CRLF)
        if not separator:
            raise InvalidInput("invalid_multipart", "A part has no blank line after its headers.")
        part_type = Message()
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-type":
                part_type["Content-Type"] = value.strip()
        if part_type.get("Content-Type") and part_type.get_content_type() != DICOM:
            raise InvalidInput("unsupported_media_type", f"A part is {part_type.get_content_type()}.")
        found.append(content)
    if not found:
        raise InvalidInput("invalid_multipart", "It has no parts.")
    return found


def _between_delimiters(body: bytes, delimiter: bytes):
    """Each part's bytes (headers and content): what lies between one delimiter line and the next (RFC 2046 5.1.1:
    a delimiter starts a line and may be followed by white space; the last one ends with '--')."""
    lines = re.compile(rb"(?:^|\r\n)" + re.escape(delimiter) + rb"(--)?[ \t]*(?:\r\n|$)")
    marks = list(lines.finditer(body))
    if not marks or not marks[-1].group(1):
        raise InvalidInput("invalid_multipart", "It does not end with the closing boundary.")
    for start, end in zip(marks, marks[1:], strict=False):
        if start.group(1):
            break
        yield body[start.end() : end.start()]


def multipart(files: list[bytes]) -> tuple[str, bytes]:
    """(Content-Type, body) of a STOW-RS request carrying `files`; the boundary occurs in none of them."""
    boundary = uuid.uuid4().hex
    while any(boundary.encode() in data for data in files):
        boundary = uuid.uuid4().hex
    body = b"".join(
        b"--%s\r\nContent-Type: %s\r\n\r\n%s\r\n" % (boundary.encode(), DICOM.encode(), data) for data in files
    )
    return f'multipart/related; type="{DICOM}"; boundary={boundary}', body + b"--%s--\r\n" % boundary.encode()


def check(files: list[bytes], study_uid: str | None = None) -> tuple[list[instances.Instance], list[Outcome]]:
    """The whole CT instances among `files` (of `study_uid`, when the URL names one), and an Outcome for each
    refused file."""
    accepted, refused = [], []
    for data in files:
        try:
            instance = instances.read(data)
        except instances.Refused as refusal:
            uids = _uids(data)
            refused.append(Outcome(*uids, failure=FAILURE[refusal.kind]))
            continue
        if study_uid and instance.study_uid != study_uid:
            refused.append(Outcome(instance.sop_class_uid, instance.sop_instance_uid, failure=STUDY_MISMATCH))
            continue
        accepted.append(instance)
    return accepted, refused


def _uids(data: bytes) -> tuple[str, str]:
    """The SOP Class and Instance UIDs a refused file names, as far as they can be read (else empty)."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True, specific_tags=["SOPClassUID", "SOPInstanceUID"])
        return str(ds.get("SOPClassUID") or ""), str(ds.get("SOPInstanceUID") or "")
    except Exception:  # a refused file may be unreadable from its first byte
        return "", ""


def response(outcomes: list[Outcome]) -> tuple[int, dict]:
    """The HTTP status and the Store Instances Response (DICOM JSON): 200 when every instance was stored, 202 when
    some were, 409 when none was."""
    answer = Dataset()
    stored = [outcome for outcome in outcomes if outcome.failure is None]
    failed = [outcome for outcome in outcomes if outcome.failure is not None]
    if stored:
        answer.ReferencedSOPSequence = [_item(outcome) for outcome in stored]
    if failed:
        answer.FailedSOPSequence = [_item(outcome) for outcome in failed]
    return (200 if not failed else 202 if stored else 409), answer.to_json_dict()


def _item(outcome: Outcome) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = outcome.sop_class_uid
    item.ReferencedSOPInstanceUID = outcome.sop_instance_uid
    if outcome.failure is not None:
        item.FailureReason = outcome.failure
    return item
