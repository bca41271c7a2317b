"""A finished study's answer as DICOM: the Structured Report and the key images (backend/dicom), kept as objects
beside the study's own and, when DICOM_RESULTS_TO is set, sent to the PACS.

The runner renders them when the study is finished and records them with its answer (the objects first,
then the document that names them in `dicom_results`: backend/analysis/record.py), then calls `deliver`,
which makes one attempt. A PACS that is down holds no worker and loses nothing: the study is done, its
results are kept and served (GET /studies/<id>/dicom/...), and `results_delivery` stays pending, with the
last error, until the next attempt (the study's lease runs until then, and the queue tries again when it
expires, as it resumes any study), then says sent, or failed and why. A next attempt is planned only within
DICOM_RESULTS_RETRY_S after the study finished (a queue may start it a little later). What is sent is read back
from the objects, so the PACS gets the very instances the service serves. Their UIDs follow from the study id: a
study resumed by another worker makes the same instances (the objects are create-only, so the first ones stay).
"""

import io
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pydicom

from backend.analysis import objects
from backend.analysis.study import public
from backend.dicom import keyimages, report, send
from backend.dicom.results import encode
from backend.dicom.settings import parse_destination

log = logging.getLogger(__name__)

SR = "sr.dcm"


@dataclass(frozen=True)
class Settings:
    """DICOM_RESULTS_TO (empty: kept only), DICOM_AE_TITLE (the calling AE title) and DICOM_RESULTS_RETRY_S."""

    to: str | None = None
    ae_title: str = "CTANALYSIS"
    retry_s: float = 120.0

    @classmethod
    def from_config(cls, config):
        return cls(config["DICOM_RESULTS_TO"] or None, config["DICOM_AE_TITLE"], config["DICOM_RESULTS_RETRY_S"])


def key_image_name(rank: int) -> str:
    return f"key-image-{rank:02d}.dcm"


def paths(doc: dict) -> list[str]:
    """The objects of the study's DICOM results (empty when it has none): the SR, then the key images."""
    kept = doc.get("dicom_results")
    if not kept:
        return []
    names = [SR, *(key_image_name(rank) for rank in range(1, len(kept["key_images"]) + 1))]
    return [objects.results_path(doc["owner"], doc["id"], name) for name in names]


def render(stores, doc: dict, settings: Settings) -> tuple[list[tuple[dict, bytes]], dict]:
    """The SR and key images of `doc` (the study as it is about to be stored done) as objects to write, and the
    fields its document gains: `dicom_results` (their SOP Instance UIDs) and, with a destination,
    `results_delivery` pending. A study whose results cannot be made (logged) gains none: its answer stands."""
    try:
        view = public(doc)
        keys = [key["index"] for key in view.get("key_slices", [])]
        headers = _headers(stores, doc, sorted({0, *keys}))
        sr = report.structured_report(view, headers)
        overlays = {
            index: stores.images.get(objects.slice_path(doc["owner"], doc["id"], index, "heatmap.jpg"))
            for index in keys
        }
        images = keyimages.key_images(view, headers, {i: data for i, data in overlays.items() if data})
        written = [(SR, encode(sr))] + [(key_image_name(rank), encode(image)) for rank, image in enumerate(images, 1)]
    except Exception:
        log.exception("study %s: its DICOM results could not be made", doc["id"])
        return [], {}
    fields = {
        "dicom_results": {"sr": str(sr.SOPInstanceUID), "key_images": [str(image.SOPInstanceUID) for image in images]}
    }
    if settings.to:
        fields["results_delivery"] = send.pending(parse_destination(settings.to)).as_dict()
    return [
        ({"path": objects.results_path(doc["owner"], doc["id"], name), "content_type": "application/dicom"}, data)
        for name, data in written
    ], fields


def _headers(stores, doc: dict, indexes: list[int]) -> dict[int, pydicom.Dataset]:
    found = {}
    for index in indexes:
        data = stores.images.get(objects.dicom_path(doc["owner"], doc["id"], index))
        if data:
            found[index] = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
    return found


def deliver(stores, doc: dict, settings: Settings) -> dict:
    """One attempt at sending the kept results of the finished study `doc` to DICOM_RESULTS_TO, recorded in its
    `results_delivery`: sent, failed, or pending with the next attempt's time as the study's lease. Returns the
    document as stored (as given when the study was deleted, or another worker took the delivery over)."""
    before = doc["results_delivery"]
    destination = parse_destination(settings.to)
    if destination is None:  # a cut-off delivery resumed where DICOM_RESULTS_TO is empty: nowhere to send it
        delivery = send.Delivery("failed", before["to"], "DICOM_RESULTS_TO is empty where it resumed")
    else:
        delivery = _send(stores, doc, destination, settings)
    delivery = replace(delivery, attempts=before.get("attempts", 0) + 1)
    next_attempt = None
    if delivery.state == "pending":
        next_attempt = datetime.now(UTC) + timedelta(seconds=send.wait_after(delivery.attempts))
        if next_attempt > datetime.fromisoformat(doc["finished_at"]) + timedelta(seconds=settings.retry_s):
            delivery = replace(
                delivery, state="failed", error=f"{delivery.error} (gave up after {settings.retry_s:g} s)"
            )
            next_attempt = None
    if delivery.state == "failed":
        log.warning("study %s: results not delivered to %s: %s", doc["id"], delivery.to, delivery.error)
    saved = stores.documents.update_study(
        doc["id"],
        {
            "results_delivery": delivery.as_dict(),
            "lease_owner": None,
            "lease_until": next_attempt.isoformat() if next_attempt else None,
        },
        {"status": "done", "lease_owner": doc.get("lease_owner")},  # unless another worker took the delivery over
    )
    return saved or doc


def _send(stores, doc: dict, destination, settings: Settings) -> send.Delivery:
    try:
        files = [stores.images.get(path) for path in paths(doc)]
        if not files or any(data is None for data in files):
            raise LookupError("the kept results are missing")
        return send.attempt(files, destination, settings.ae_title)
    except Exception as exc:  # the object store away, or the sender failing in a way of its own: recorded
        log.exception("study %s: its results could not be sent", doc["id"])
        return send.Delivery("failed", destination.shown, str(exc) or type(exc).__name__)
