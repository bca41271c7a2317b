"""POST /analyze: read the upload, analyse the slice, store the document, answer."""
import hashlib
from datetime import datetime, timezone

from flask import Blueprint, current_app, jsonify, url_for

from backend import metrics
from backend.analysis import document
from backend.analysis.pipeline import analyze_slice
from backend.api.upload import analysis_id, read_upload
from backend.errors import ApiError
from backend.ml.classifier import get_classifier
from backend.store import get_store

bp = Blueprint("analyze", __name__)


@bp.post("/analyze")
def analyze():
    config = current_app.config
    upload = read_upload()
    new_id = analysis_id()

    classifier = get_classifier()
    result = analyze_slice(upload.source, classifier, window=upload.window, max_pixels=config["MAX_PIXELS"])

    # document
    fields = {
        "id": new_id,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "filename": upload.filename,
        "sha256": _sha256(upload.source),
        "prediction": result.prediction.as_json(),
        "findings": result.findings,
        "recommendations": result.recommendations,
        "model": {"name": classifier.name, "version": classifier.version},
    }
    response, stored = document.build(fields, result.images)
    stored = document.fit_to_budget(stored, result.slice_400, result.overlay_400,
                                    config["FIRESTORE_COLLECTION"], config["DOC_BUDGET_BYTES"])

    # store: create-only, so a retried upload (same Idempotency-Key) finds the first write
    with metrics.stage("store"):
        saved = get_store().create(stored)
    replayed = saved["created_at"] != stored["created_at"]
    if replayed and saved.get("sha256") != stored["sha256"]:
        raise ApiError(422, "idempotency_key_reused", "This Idempotency-Key was already used for a different image.")

    if not replayed:
        metrics.ANALYSES.labels(label=result.prediction.label).inc()

    # response
    body_json = jsonify({**response, "created_at": saved["created_at"]})
    headers = {"Location": url_for("analyses.get_analysis", analysis_id=new_id)}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return body_json, 201, headers


def _sha256(source) -> str:
    """Fingerprint of the upload as sent (base64 text for JSON uploads), to recognise replays."""
    return hashlib.sha256(source.encode() if isinstance(source, str) else source).hexdigest()
