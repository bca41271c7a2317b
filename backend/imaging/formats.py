"""Recognise an upload's format from its first bytes, never from its name or Content-Type."""

PNG, JPEG, DICOM = "png", "jpeg", "dicom"

# Little-endian group numbers a DICOM data set without the 128-byte preamble starts with:
# file meta (0002), identifying (0008) or, rarely, patient/study (0010, 0018, 0020) groups.
_BARE_DICOM_GROUPS = (b"\x02\x00", b"\x08\x00", b"\x10\x00", b"\x18\x00", b"\x20\x00")


def sniff(data: bytes):
    """Return PNG, JPEG, DICOM, or None when the bytes are none of these."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data[128:132] == b"DICM":
        return DICOM
    if data[:2] in _BARE_DICOM_GROUPS and len(data) > 8 and data[4:6].isalpha():
        return DICOM  # explicit VR: two letters after the tag
    if data[:2] in _BARE_DICOM_GROUPS and len(data) > 8 and data[2:4] != b"\x00\x00":
        return DICOM  # implicit VR: element number, then a 4-byte length
    return None
