"""The files of a study upload: DICOM files sent as they are, or inside ZIP archives, read safely.

Nothing is ever extracted to disk by its own name: an entry is read into memory (one at a time, its
size known and bounded before it is inflated) and handed on as bytes, so a path-traversal name, a
symbolic link or a name that clashes cannot write anywhere. What is refused or left out:

- a ZIP whose central directory announces more entries than a study may have, or whose declared
  contents exceed the upload budget (a ZIP bomb), is refused (413) before anything is inflated; an
  entry that inflates to more than it declared fails its CRC check and the archive is refused (400);
- entries with unsafe names (absolute, `..`, drive letters), symbolic links, encrypted entries and
  nested archives are skipped and named in `skipped`, as are files that are not DICOM.

The bytes are read twice when a study is made (headers first, to choose and order the series; then the
chosen files, to keep them), so only one entry is held at a time.
"""
import io
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import BinaryIO

from backend.errors import InvalidInput

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or the end record of an empty archive
NESTED_ARCHIVE_MAGIC = (b"PK\x03\x04", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!", b"BZh")
NESTED_ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
IGNORED_PREFIXES = ("__MACOSX/",)  # macOS resource forks: never images, and not worth naming
MAX_SKIPPED_NAMED = 50  # skipped entries named in the study; more are counted only
MAX_NAME = 255


@dataclass(frozen=True)
class StudyLimits:
    max_slices: int = 1000
    max_bytes: int = 1024 * 2**20

    @classmethod
    def from_config(cls, config):
        return cls(config["STUDY_MAX_SLICES"], config["STUDY_MAX_UPLOAD_MB"] * 2**20)

    @property
    def max_entries(self) -> int:
        """Entries a ZIP may list: the slices plus room for notes, DICOMDIRs and folders."""
        return 4 * self.max_slices + 1000

    def too_large(self) -> InvalidInput:
        return InvalidInput("study_too_large", maximum=self.max_bytes // 2**20)


@dataclass
class Member:
    """One file of the upload: a display name and a way to read its bytes (again)."""

    name: str
    read: Callable[[], bytes]


@dataclass
class Upload:
    members: list[Member] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {name, reason}
    skipped_count: int = 0

    def skip(self, name: str, reason: str):
        self.skipped_count += 1
        if len(self.skipped) < MAX_SKIPPED_NAMED:
            self.skipped.append({"name": _printable(name), "reason": reason})


def collect(files: list[tuple[str, BinaryIO]], limits: StudyLimits) -> Upload:
    """The uploaded files (name, seekable stream): ZIPs opened, each entry checked; the rest as they are."""
    upload = Upload()
    total = 0
    for name, stream in files:
        stream.seek(0)
        head = stream.read(4)
        stream.seek(0, io.SEEK_END)
        size = stream.tell()
        stream.seek(0)
        if head in ZIP_MAGIC:
            total += _open_zip(name, stream, limits, upload, limits.max_bytes - total)
        else:
            total += size
            upload.members.append(Member(_printable(name), _reader(stream)))
        if total > limits.max_bytes:
            raise limits.too_large()
    return upload


def _reader(stream: BinaryIO) -> Callable[[], bytes]:
    def read():
        stream.seek(0)
        return stream.read()
    return read


def _open_zip(name: str, stream: BinaryIO, limits: StudyLimits, upload: Upload, budget: int) -> int:
    """Add the archive's safe entries to `upload`; return the bytes they declare."""
    _check_directory(stream, limits)
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise InvalidInput("invalid_archive") from exc
    declared = 0
    for info in archive.infolist():
        entry = info.filename
        if info.is_dir() or entry.startswith(IGNORED_PREFIXES) or PurePosixPath(entry).name.startswith("._"):
            continue
        declared += info.file_size
        if declared > budget:
            raise limits.too_large()
        reason = _refusal(info)
        if reason:
            upload.skip(f"{name}/{entry}", reason)
            continue
        upload.members.append(Member(_printable(f"{name}/{entry}"), _entry_reader(archive, info)))
    return declared


def _check_directory(stream: BinaryIO, limits: StudyLimits):
    """Read the end-of-central-directory record first: an archive listing millions of entries is refused
    before zipfile builds an object for each."""
    try:
        end = zipfile._EndRecData(stream)  # the record zipfile itself reads first
    except OSError as exc:
        raise InvalidInput("invalid_archive") from exc
    finally:
        stream.seek(0)
    if end is None:
        raise InvalidInput("invalid_archive")
    if end[zipfile._ECD_ENTRIES_TOTAL] > limits.max_entries:
        raise InvalidInput("too_many_slices", f"The archive lists {end[zipfile._ECD_ENTRIES_TOTAL]} entries.",
                           maximum=limits.max_slices)


def _refusal(info: zipfile.ZipInfo) -> str | None:
    """Why an entry is skipped, or None when it may be read."""
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        return "unsafe path (absolute or leading out of the archive)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    if info.flag_bits & 0x1:
        return "encrypted"
    if name.lower().endswith(NESTED_ARCHIVE_SUFFIXES):
        return "nested archive (not opened)"
    return None


def _entry_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    def read():
        try:
            with archive.open(info) as entry:  # inflates at most info.file_size bytes, then checks the CRC
                data = entry.read(info.file_size + 1)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
            raise InvalidInput("invalid_archive", f"Its entry {_printable(info.filename)!r} cannot be read.") from exc
        if data.startswith(NESTED_ARCHIVE_MAGIC[:1]):
            raise NestedArchive()
        return data
    return read


class NestedArchive(Exception):
    """An entry whose bytes are a ZIP, whatever its name: skipped, never opened."""


def _printable(name: str) -> str:
    name = "".join(ch for ch in str(name) if ch.isprintable() and ch != "\ufffd").strip()
    return name[-MAX_NAME:] or "upload"
