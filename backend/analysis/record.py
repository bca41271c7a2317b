"""One way to record an analysis, whichever way it came in: its objects first, then its document.

POST /analyze, re-analysis and the batch command's --store call `record_slice`; a study is recorded by
`record_study` (its DICOM files, then its document) and, while it runs, `record_study_progress` (each batch's
slice images, then the document's progress, only while the worker still holds the study). The objects
(400 px images, the original upload) are written in parallel and create-only before the document that
lists them, so a stored document never points at a missing object. When the document cannot be written,
or an identical request with the same Idempotency-Key stored its own first, the objects just written are
removed again; what a crash leaves behind, `python -m backend sweep` removes.
"""
from collections.abc import Iterable
from dataclasses import dataclass

from backend import metrics
from backend.analysis import document, objects
from backend.images.base import ImageStore
from backend.store.base import AnalysisStore, IdempotencyKey


@dataclass(frozen=True)
class Stores:
    """Where analyses are kept: documents, objects (None with IMAGE_STORE=none), and the documents' size budget."""

    documents: AnalysisStore
    images: ImageStore | None
    collection: str  # the Firestore collection name, part of a document's size
    budget_bytes: int

    @classmethod
    def of(cls, app):
        return cls(app.extensions["store"], app.extensions["image_store"], app.config["FIRESTORE_COLLECTION"],
                   app.config["DOC_BUDGET_BYTES"])


def record(stores: Stores, doc: dict, written: list[tuple[dict, bytes]], key: IdempotencyKey | None = None) -> dict:
    """Write the objects (`objects.render`'s entries and bytes), then create `doc`, which lists them.

    Returns what is stored: `doc`, or, when an identical request with `key` was stored first, that one
    (its id differs; the objects written here are removed). If an object or the document cannot be
    written, the objects written here are removed and the error is raised.
    """
    if written:
        with metrics.stage("objects"):
            objects.write(stores.images, written)
    entries = [entry for entry, _ in written]
    try:
        with metrics.stage("store"):
            saved = stores.documents.create(doc, key)
    except BaseException:
        objects.remove(stores.images, entries)
        raise
    if saved["id"] != doc["id"]:
        objects.remove(stores.images, entries)
    return saved


def record_slice(stores: Stores, fields: dict, result, original: bytes,
                 key: IdempotencyKey | None = None) -> tuple[dict, bool]:
    """A slice analysis (`fields` from document.new_fields, `result` a SliceAnalysis) recorded with its images
    and the original upload. Returns (the response body, whether it is a replay of an earlier request)."""
    written = objects.render(fields["owner"], fields["id"], original, result.jpegs) if stores.images else []
    if written:
        fields = {**fields, "images": [entry for entry, _ in written]}
    response, stored = document.build(fields, result.images)
    stored = document.fit_to_budget(stored, result.slice_400, result.overlay_400, stores.collection,
                                    stores.budget_bytes)
    saved = record(stores, stored, written, key)
    if saved["id"] != stored["id"]:
        return saved, True
    metrics.ANALYSES.labels(label=result.prediction.label).inc()
    return response, False


def record_study(stores: Stores, doc: dict, chunks: Iterable[list[tuple[dict, bytes]]]) -> dict:
    """A new study: its objects (the kept DICOM files) written a chunk at a time, so only one chunk's bytes are
    held, then its document. When a write fails, every object written here is removed and the error raised."""
    entries = []
    try:
        for chunk in chunks:
            with metrics.stage("objects"):
                objects.write(stores.images, chunk)
            entries += [entry for entry, _ in chunk]
        with metrics.stage("store"):
            return stores.documents.create_study(doc)
    except BaseException:
        objects.remove(stores.images, entries)
        raise


def record_study_progress(stores: Stores, study_id: str, written: list[tuple[dict, bytes]], changes: dict,
                          expect: dict) -> dict | None:
    """A running study's batch: its slice objects (create-only: a resumed study finds its earlier ones), then
    `changes` to the document if `expect` still holds (this worker's lease). None when it no longer does; if the
    study is gone (deleted meanwhile), the objects written here are removed too."""
    if written:
        with metrics.stage("objects"):
            objects.write(stores.images, written)
    with metrics.stage("store"):
        saved = stores.documents.update_study(study_id, changes, expect)
    if saved is None and stores.documents.get_study(study_id) is None:
        objects.remove(stores.images, [entry for entry, _ in written])
    return saved
