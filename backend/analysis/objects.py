"""An analysis's objects: the 400 px slice and heatmap JPEGs and the original upload; a study's too.

They are written before the document (in parallel, create-only) and described in its `images`
list: name, path, content type, size, sha256 and, for the JPEGs, width and height. The document
never holds a URL; GET /analyses/<id>/images/<name> serves each object to its owner.
"""
import hashlib
import io
import logging
from datetime import datetime, timezone

from PIL import Image

from backend.background import POOL
from backend.errors import ImageStoreUnavailable
from backend.imaging import formats

NAMES = ("slice.jpg", "heatmap.jpg", "original")
CONTENT_TYPES = {formats.PNG: "image/png", formats.JPEG: "image/jpeg", formats.DICOM: "application/dicom"}

log = logging.getLogger(__name__)
EVERYTHING = datetime(9999, 1, 1, tzinfo=timezone.utc)  # a cutoff that lists every object
STUDY_IMAGES = ("slice.jpg", "heatmap.jpg")


def prefix(owner: str, analysis_id: str) -> str:
    return f"analyses/{owner}/{analysis_id}/"


def render(owner: str, analysis_id: str, original: bytes, jpegs: dict) -> list[tuple[dict, bytes]]:
    """(entry for the document, bytes) of each object; `jpegs` (SliceAnalysis.jpegs) are those of file_url and
    heatmap_url."""
    objects = []
    for name, data in (*jpegs.items(), ("original", original)):
        entry = {"name": name, "path": prefix(owner, analysis_id) + name, "size": len(data),
                 "sha256": hashlib.sha256(data).hexdigest()}
        if name.endswith(".jpg"):
            entry["content_type"] = "image/jpeg"
            entry["width"], entry["height"] = Image.open(io.BytesIO(data)).size
        else:
            entry["content_type"] = CONTENT_TYPES.get(formats.sniff(data), "application/octet-stream")
        objects.append((entry, data))
    return objects


def write(store, objects: list[tuple[dict, bytes]]) -> list[dict]:
    """Write every object at once; if any write fails, remove those written and raise. Returns the entries."""
    futures = [POOL.submit(store.put, entry["path"], data, entry["content_type"]) for entry, data in objects]
    errors = [future.exception() for future in futures]
    if any(errors):
        remove(store, [entry for entry, _ in objects])
        raise next(error for error in errors if error)
    return [entry for entry, _ in objects]


def remove(store, entries: list[dict]):
    """Best-effort clean-up after a failed or superseded write; what stays behind, the sweep removes."""
    for entry in entries:
        try:
            store.delete(entry["path"])
        except ImageStoreUnavailable as exc:
            log.warning("object %s left for the sweep: %s", entry["path"], exc)


def delete(store, doc: dict):
    """Remove an analysis's objects before its document (ImageStoreUnavailable leaves the document whole)."""
    for entry in doc.get("images", []):
        store.delete(entry["path"])


def entry(doc: dict, name: str) -> dict | None:
    return next((e for e in doc.get("images", []) if e["name"] == name), None)


def study_prefix(owner: str, study_id: str) -> str:
    """A study's objects: dicom/<index>.dcm (the kept upload, in slice order) and slices/<index>/<name>."""
    return f"studies/{owner}/{study_id}/"


def dicom_path(owner: str, study_id: str, index: int) -> str:
    return f"{study_prefix(owner, study_id)}dicom/{index:05d}.dcm"


def slice_path(owner: str, study_id: str, index: int, name: str) -> str:
    return f"{study_prefix(owner, study_id)}slices/{index:05d}/{name}"


def delete_prefix(store, prefix: str):
    """Remove every object under `prefix` (a study's, whatever a worker wrote); ImageStoreUnavailable leaves the
    rest for a retry."""
    for path in store.list_older_than(prefix, EVERYTHING):
        store.delete(path)


def sweep(store, documents, cutoff) -> list[str]:
    """Remove objects created before `cutoff` that no document references (left by a crash, or by a
    store outage during clean-up); return their paths. `documents` is the analysis store. A study's objects
    are referenced by its document as long as it exists (its paths follow from its id)."""
    removed, referenced = [], {}
    for path in store.list_older_than("analyses/", cutoff):
        analysis_id = path.split("/")[-2]  # analyses/<owner>/<analysis id>/<name>
        if analysis_id not in referenced:
            doc = documents.get(analysis_id)
            referenced[analysis_id] = {e["path"] for e in doc.get("images", [])} if doc else set()
        if path not in referenced[analysis_id]:
            store.delete(path)
            removed.append(path)
    studies = {}
    for path in store.list_older_than("studies/", cutoff):
        owner, study_id = path.split("/")[1:3]  # studies/<owner>/<study id>/...
        if study_id not in studies:
            doc = documents.get_study(study_id)
            studies[study_id] = doc is not None and doc["owner"] == owner
        if not studies[study_id]:
            store.delete(path)
            removed.append(path)
    return removed
