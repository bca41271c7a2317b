"""Run one study: claim it, analyse its slices batch by batch, record the answer. Any queue calls `run`.

Claiming is a conditional update of the study's document (status and lease owner as read), so of two
workers handed the same study (Pub/Sub redelivers, two local queues resume it) one wins and the other
skips it. The winner holds a lease (`lease_until`), renewed with every batch's progress; a study whose
worker died is `running` with a lease that expires, and is claimed again by the next worker that sees it
(the local queue's scan, Pub/Sub's redelivery). Each claim counts an attempt: after STUDY_MAX_ATTEMPTS the
study is marked `failed` (study_interrupted) instead of being tried forever. A finished study (`done` or
`failed`) is never analysed again: a redelivered message is acknowledged and skipped.

Sending a done study's results to DICOM_RESULTS_TO is one attempt at a time (backend/studies/results.py), under a
lease too: a worker that dies while sending leaves the delivery `pending` under a lease that expires, and the next
worker that sees the study (the same scan or redelivery) sends the results again instead of leaving it pending for
ever. An attempt the PACS could not take leaves it pending with the next attempt's time as its lease, and `run`
answers BUSY: the worker is free for other studies meanwhile, and the queue hands the study back when the lease
runs out, as it would any other.
"""

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from backend.analysis import objects
from backend.analysis.batches import core_pool
from backend.analysis.record import Stores, record_study_progress
from backend.analysis.study import StudyAnswer, analyse_series, describe_study, fit_key_slices
from backend.errors import ServiceError, Unavailable
from backend.imaging.limits import Limits
from backend.studies import results as dicom_results
from backend.studies.create import now_iso

log = logging.getLogger(__name__)

DONE, SKIPPED, BUSY, STOPPED, LOST = "done", "skipped", "busy", "stopped", "lost"
DELIVERING = "delivering"  # a claim of a done study's delivery (its next attempt, or one cut off), not its analysis
FINISHED = ("done", "failed")


@dataclass
class Settings:
    batch_size: int = 16
    lease_s: float = 60.0
    max_attempts: int = 3
    cores: int = 1
    limits: Limits = Limits()
    collection: str = "analyses-studies"
    budget_bytes: int = 256 * 1024
    dicom: dicom_results.Settings = dicom_results.Settings()

    @classmethod
    def from_config(cls, config, cores: int):
        return cls(
            max(1, config["STUDY_BATCH_SIZE"]),
            config["STUDY_LEASE_S"],
            config["STUDY_MAX_ATTEMPTS"],
            cores,
            Limits.from_config(config),
            f"{config['FIRESTORE_COLLECTION']}-studies",
            config["DOC_BUDGET_BYTES"],
            dicom_results.Settings.from_config(config),
        )


def worker_name() -> str:
    """Who holds a lease: host, process and a random part (a restarted process is another worker)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _utc(offset_s: float = 0) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=offset_s)


def lease_left_s(doc: dict) -> float:
    """Seconds until the study's lease expires (0 or less: expired, or none)."""
    until = doc.get("lease_until")
    return (datetime.fromisoformat(until) - _utc()).total_seconds() if until else 0.0


def delivery_pending(doc: dict) -> bool:
    """Done, its results on their way to the PACS (or cut off on the way, once its lease has expired)."""
    return doc["status"] == "done" and (doc.get("results_delivery") or {}).get("state") == "pending"


def claimable(doc: dict | None) -> bool:
    """Whether a worker may claim the study now: queued, or running or sending its results under an expired lease."""
    return doc is not None and (
        doc["status"] == "queued" or ((doc["status"] == "running" or delivery_pending(doc)) and lease_left_s(doc) <= 0)
    )


def claim(stores: Stores, study_id: str, settings: Settings, worker: str) -> tuple[str, dict | None]:
    """(SKIPPED, None) for a study that is gone or finished (or was just given up), (BUSY, doc) while another
    worker's lease runs, (DELIVERING, doc) for a done study whose delivery is due again (its next attempt, or one
    cut off), else ("claimed", the document as claimed)."""
    doc = stores.documents.get_study(study_id)
    if doc is not None and delivery_pending(doc):
        return _claim_delivery(stores, doc, settings, worker)
    if doc is None or doc["status"] in FINISHED:
        return SKIPPED, None
    if not claimable(doc):
        return BUSY, doc
    read = {"status": doc["status"], "lease_owner": doc.get("lease_owner"), "attempts": doc.get("attempts", 0)}
    if doc.get("attempts", 0) >= settings.max_attempts:
        error = ServiceError("study_interrupted", attempts=doc["attempts"])
        stores.documents.update_study(
            study_id,
            {
                "status": "failed",
                "lease_owner": None,
                "lease_until": None,
                "error": {"error": error.code, "message": error.message},
            },
            read,
        )
        log.warning("study %s given up after %d attempts", study_id, doc["attempts"])
        return SKIPPED, None
    token = f"{worker}:{uuid.uuid4().hex[:8]}"
    claimed = stores.documents.update_study(
        study_id,
        {
            "status": "running",
            "lease_owner": token,
            "lease_until": _lease(settings),
            "attempts": doc.get("attempts", 0) + 1,
            "progress": {"done": 0, "total": doc["slice_count"]},
            "started_at": now_iso(),
        },
        read,
    )
    if claimed is None:  # another worker claimed it between the read and the write
        return BUSY, stores.documents.get_study(study_id)
    return "claimed", claimed


def _claim_delivery(stores: Stores, doc: dict, settings: Settings, worker: str) -> tuple[str, dict | None]:
    """(DELIVERING, the document as claimed) for a delivery due for its next attempt or whose sender died, (BUSY,
    doc) while one is sending or waiting for its next attempt."""
    if not claimable(doc):
        return BUSY, doc
    claimed = stores.documents.update_study(
        doc["id"],
        {"lease_owner": f"{worker}:{uuid.uuid4().hex[:8]}", "lease_until": _lease(settings)},
        {"status": "done", "lease_owner": doc.get("lease_owner")},
    )
    if claimed is None:
        return BUSY, stores.documents.get_study(doc["id"])
    if doc.get("lease_owner"):  # a worker held it: it died while sending
        log.warning("study %s: its results' delivery was cut off; sending them again", doc["id"])
    else:
        attempt = doc["results_delivery"].get("attempts", 0) + 1
        log.info("study %s: sending its results again (attempt %d)", doc["id"], attempt)
    return DELIVERING, claimed


def _lease(settings: Settings) -> str:
    return _utc(settings.lease_s).isoformat()


def _delivered(doc: dict) -> tuple[str, dict]:
    """DONE once the results are sent or failed; BUSY while they wait for their next attempt (the lease's end)."""
    return (BUSY, doc) if delivery_pending(doc) else (DONE, doc)


def run(
    stores: Stores, classifier, study_id: str, settings: Settings, worker: str, stop: threading.Event | None = None
) -> tuple[str, dict | None]:
    """Claim and analyse the study. Returns (outcome, document): DONE (done or failed), SKIPPED (finished or
    gone: nothing to do), BUSY (another worker holds it; try again after its lease), STOPPED (`stop` was set: the
    study is queued again for another worker) or LOST (its lease was taken over, or it was deleted). A done study
    whose results wait for their next attempt at the PACS is BUSY too."""
    outcome, doc = claim(stores, study_id, settings, worker)
    if outcome == DELIVERING:
        return _delivered(dicom_results.deliver(stores, doc, settings.dicom))
    if outcome != "claimed":
        return outcome, doc
    mine = {"status": "running", "lease_owner": doc["lease_owner"]}
    try:
        return _analyse(stores, classifier, doc, settings, mine, stop or threading.Event())
    except Unavailable:
        raise  # a store is away: the lease runs out and the study is claimed again; nothing can be written now
    except Exception as exc:
        if stop is not None and stop.is_set():  # stopping: thread pools refuse work; hand the study back
            log.warning("study %s stopped while the process exits: %s", study_id, exc)
            return _release(stores, study_id, mine)
        log.exception("study %s failed", study_id)
        error = exc if isinstance(exc, ServiceError) and exc.status < 500 else ServiceError("study_failed")
        failed = stores.documents.update_study(
            study_id,
            {
                "status": "failed",
                "lease_owner": None,
                "lease_until": None,
                "finished_at": now_iso(),
                "error": {"error": error.code, "message": error.message},
            },
            mine,
        )
        return (DONE, failed) if failed else (LOST, None)


def _analyse(stores, classifier, doc, settings: Settings, mine: dict, stop: threading.Event):
    study_id, owner, total = doc["id"], doc["owner"], doc["slice_count"]
    ended = []

    def read(index):
        return stores.images.get(objects.dicom_path(owner, study_id, index)) or b""

    def after_batch(done, results):
        written = [
            ({"path": objects.slice_path(owner, study_id, outcome.index, name), "content_type": "image/jpeg"}, data)
            for outcome, jpegs, _ in results
            for name, data in (jpegs or {}).items()
        ]
        progress = {"progress": {"done": done, "total": total}, "lease_until": _lease(settings)}
        if record_study_progress(stores, study_id, written, progress, mine) is None:
            log.warning("study %s: lease lost or study deleted; stopping", study_id)
            ended.append((LOST, None))
            return False
        if stop.is_set() and done < total:
            ended.append(_release(stores, study_id, mine))
            return False
        return True

    with core_pool(settings.cores) as pool:
        answer = analyse_series(
            read,
            total,
            classifier,
            doc["parameters"]["window"],
            settings.limits,
            pool,
            settings.cores,
            settings.batch_size,
            after_batch,
        )
    if answer is None:
        return ended[0]
    finished = _finish(stores, doc, answer, settings, mine)
    return (DONE, None) if finished is None else _delivered(finished)


def _release(stores, study_id, mine):
    """Stopping (SIGTERM): the study goes back to the queue, this attempt not counted."""
    doc = stores.documents.get_study(study_id)
    if doc is None:
        return LOST, None
    released = stores.documents.update_study(
        study_id,
        {"status": "queued", "lease_owner": None, "lease_until": None, "attempts": max(0, doc.get("attempts", 1) - 1)},
        mine,
    )
    return STOPPED, released


def _finish(stores, doc, answer: StudyAnswer, settings: Settings, mine: dict) -> dict | None:
    decoded = [o for o in answer.outcomes if o.error is None]
    counted = {o.index for o in answer.counted}
    table = {
        **doc["slice_table"],
        "probability": [o.probability for o in answer.outcomes],
        "label": [o.label for o in answer.outcomes],
        "assessable": [o.assessable for o in answer.outcomes],
        "counted": [o.index in counted for o in answer.outcomes],
        "reason": [o.reason for o in answer.outcomes],
        "error": [o.error for o in answer.outcomes],
    }
    if not decoded:
        error = ServiceError("no_decodable_slice", f"The first slice's error: {answer.outcomes[0].error}.")
        return stores.documents.update_study(
            doc["id"],
            {
                "status": "failed",
                "lease_owner": None,
                "lease_until": None,
                "finished_at": now_iso(),
                "slice_table": table,
                "error": {"error": error.code, "message": error.message},
            },
            mine,
        )
    prediction = answer.prediction()
    findings, recommendations = describe_study(answer, prediction, doc["slice_table"]["z"])
    changes = {
        "status": "done",
        "lease_owner": None,
        "lease_until": None,
        "finished_at": now_iso(),
        "progress": {"done": doc["slice_count"], "total": doc["slice_count"]},
        "prediction": prediction,
        "slice_table": table,
        "findings": findings,
        "recommendations": recommendations,
    }
    sized = fit_key_slices({**doc, **changes}, answer.key_candidates(), settings.collection, settings.budget_bytes)
    changes["key_slices"] = sized["key_slices"]
    written, fields = dicom_results.render(stores, {**doc, **changes}, settings.dicom)  # the SR and key images
    # Sending them is leased like a batch: a worker dying meanwhile leaves it to another. An attempt slower than the
    # lease may be made twice, which a PACS takes as one (the same instances), and only one outcome is recorded.
    if fields.get("results_delivery"):
        fields = {**fields, "lease_owner": mine["lease_owner"], "lease_until": _lease(settings)}
    done = record_study_progress(stores, doc["id"], written, {**changes, **fields}, mine)
    if done is not None and done.get("results_delivery"):
        return dicom_results.deliver(stores, done, settings.dicom)
    return done
