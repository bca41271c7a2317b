"""Make a study from DICOM files, whichever way they came: POST /studies, a re-analysis, or a DICOM node
(C-STORE to the listener, STOW-RS: `create_received`). Callable from code: nothing here reads a request.

Top to bottom: the files' headers (choose, check and order the series), then the chosen files kept as
objects in slice order and the document (`record_study`), then the study handed to the queue. When the
queue does not take it, the study is removed again and the caller gets a 503.
"""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import PurePosixPath

from backend.analysis import objects
from backend.analysis.record import Stores, record_study
from backend.dicom.collector import received_folder
from backend.errors import InvalidInput, Unavailable
from backend.imaging.archive import Member, StudyLimits, Upload
from backend.imaging.dicom import WINDOWS
from backend.imaging.series import MAX_UID, plan

CHUNK = 16  # DICOM files held and written at once


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def check_parameters(window: str, series_uid: str | None):
    if window not in WINDOWS:
        raise InvalidInput("invalid_window")
    if series_uid is not None and not 0 < len(series_uid) <= MAX_UID:
        raise InvalidInput("invalid_series_uid")


def create_study(
    stores: Stores,
    queue,
    classifier,
    owner: str,
    upload: Upload,
    *,
    filename: str,
    window: str = "lung",
    series_uid: str | None = None,
    limits: StudyLimits | None = None,
    **extra,
) -> dict:
    """A new study, queued; returns its stored document. InvalidInput for what cannot become a study."""
    if stores.images is None:
        raise Unavailable("studies_need_image_store")
    check_parameters(window, series_uid)
    limits = limits or StudyLimits()
    series = plan(upload, limits, series_uid)
    study_id = uuid.uuid4().hex
    doc = {
        "id": study_id,
        "owner": owner,
        "created_at": now_iso(),
        "status": "queued",
        "progress": {"done": 0, "total": len(series.slices)},
        "filename": filename,
        "study_uid": series.study_uid,
        "series_uid": series.series_uid,
        "series_description": series.description,
        "modality": series.modality or "CT",
        "slice_count": len(series.slices),
        "ordered_by": series.ordered_by,
        "parameters": {"window": window},
        "model": {"name": classifier.name, "version": classifier.version},
        "skipped_series": series.skipped_series,
        "skipped_files": upload.skipped,
        "skipped_file_count": upload.skipped_count,
        **extra,
        "attempts": 0,
        "lease_owner": None,
        "lease_until": None,
        "slice_table": {
            "instance_number": [s.header.instance_number for s in series.slices],
            "sop_instance_uid": [s.header.sop_uid for s in series.slices],
            "z": [None if s.z is None else round(s.z, 3) for s in series.slices],
        },
    }

    def chunks():
        for start in range(0, len(series.slices), CHUNK):
            yield [
                (
                    {"path": objects.dicom_path(owner, study_id, index), "content_type": "application/dicom"},
                    series.slices[index].member.read(),
                )
                for index in range(start, min(start + CHUNK, len(series.slices)))
            ]

    saved = record_study(stores, doc, chunks())
    try:
        queue.submit(study_id)
    except Unavailable:
        remove_study(stores, saved)
        raise
    return saved


def create_received(
    stores: Stores,
    queue,
    classifier,
    owner: str,
    files: list[tuple[str, Callable[[], bytes]]],
    *,
    source: dict,
    limits: StudyLimits | None = None,
) -> dict:
    """A study of one series a DICOM node sent: `files` are its instances (a name and a way to read the bytes:
    already received and checked, kept or in memory), `source` how they came ({protocol, calling_ae})."""
    sender = f" from {source['calling_ae']}" if source.get("calling_ae") else ""
    return create_study(
        stores,
        queue,
        classifier,
        owner,
        Upload([Member(name, read) for name, read in files]),
        filename=f"{len(files)} instances by {source['protocol']}{sender}",
        limits=limits,
        source=source,
    )


def remove_study(stores: Stores, doc: dict) -> bool:
    """Its objects first, then its document (a 503 on the way leaves the study readable; a retry finishes)."""
    objects.delete_prefix(stores.images, objects.study_prefix(doc["owner"], doc["id"]))
    return stores.documents.delete_study(doc["id"], owner=doc["owner"])


def delete_with_received_copies(stores: Stores, doc: dict) -> bool:
    """A user's delete: `remove_study`, and for a study of a series received by C-STORE, the listener's copies of
    that series too (kept to know the series when it is sent again), once no other study of it is left: no copy
    of its images stays. The series sent again afterwards is a new study."""
    folder = received_folder_of(doc)
    others = _studies(stores.documents, owner=doc["owner"], study_uid=doc.get("study_uid"))
    if folder and not any(received_folder_of(other) == folder for other in others if other["id"] != doc["id"]):
        objects.delete_prefix(stores.images, folder)
    return remove_study(stores, doc)


def received_folder_of(doc: dict) -> str | None:
    """Where the listener keeps the series a study was made of (C-STORE); None for other studies."""
    source = doc.get("source") or {}
    if source.get("protocol") != "C-STORE":
        return None
    return received_folder(doc.get("series_uid") or "", source.get("calling_ae") or "")


def received_folders(documents) -> set[str]:
    """The received series that studies were made of, which `python -m backend sweep` keeps."""
    return {folder for doc in _studies(documents) if (folder := received_folder_of(doc))}


def _studies(documents, owner=None, study_uid=None):
    cursor = None
    while True:
        items, cursor = documents.list_studies(100, cursor, owner=owner, study_uid=study_uid)
        yield from items
        if cursor is None:
            return


def display_name(names: list[str]) -> str:
    """The study's `filename`: the one file's name, or the folder the files share, or how many there are."""
    if len(names) == 1:
        return PurePosixPath(names[0].replace("\\", "/")).name or names[0]
    folders = {PurePosixPath(n.replace("\\", "/")).parts[0] for n in names if "/" in n.replace("\\", "/")}
    if len(folders) == 1 and all("/" in n.replace("\\", "/") for n in names):
        return folders.pop()
    return f"{len(names)} files"
