"""POST /analyze: authenticate, read the upload, replay the caller's Idempotency-Key, analyse, store, answer."""
import uuid

from flask import Blueprint, current_app, jsonify, request, url_for

from backend import metrics, ratelimit
from backend.analysis import document
from backend.analysis.capacity import heavy_work_slot
from backend.analysis.pipeline import analyze_slice
from backend.api.upload import Upload, read_upload
from backend.auth import authenticate
from backend.errors import ApiError
from backend.imaging.limits import Limits
from backend.ml.classifier import get_classifier
from backend.store import get_store
from backend.store.base import IdempotencyKey

bp = Blueprint("analyze", __name__)


@bp.post("/analyze")
def analyze():
    caller = authenticate()
    ratelimit.check(caller)
    config = current_app.config
    upload = read_upload()
    key = _idempotency_key(upload, caller.uid)
    if key is not None and (earlier := get_store().find_by_key(key)) is not None:
        return _answer(earlier, replayed=True)

    classifier = get_classifier()
    with heavy_work_slot():
        result = analyze_slice(upload.data, classifier, window=upload.window, frame=upload.frame,
                               limits=Limits.from_config(config))

    fields = document.new_fields(uuid.uuid4().hex, caller.uid, upload.filename, upload.sha256, result, classifier)
    response, stored = document.build(fields, result.images)
    stored = document.fit_to_budget(stored, result.slice_400, result.overlay_400,
                                    config["FIRESTORE_COLLECTION"], config["DOC_BUDGET_BYTES"])

    with metrics.stage("store"):
        saved = get_store().create(stored, key)
    if saved["id"] != fields["id"]:  # an identical request with this key was stored first
        return _answer(saved, replayed=True)
    metrics.ANALYSES.labels(label=result.prediction.label).inc()
    return _answer(response)


def _idempotency_key(upload: Upload, owner: str) -> IdempotencyKey | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not (key.isascii() and key.isprintable()):
        raise ApiError(400, "invalid_idempotency_key", "The Idempotency-Key header must be 1 to 255 printable characters.")
    return IdempotencyKey(owner, key, upload.request_fingerprint)


def _answer(body: dict, replayed=False):
    """201 with the analysis; a replay answers with the stored analysis, as the first request stored it."""
    headers = {"Location": url_for("analyses.get_analysis", analysis_id=body["id"])}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return jsonify(body), 201, headers
