"""POST /analyze: decode, model, images, document, store, response."""
import hashlib
from datetime import datetime, timezone

import numpy as np
from flask import Blueprint, current_app, jsonify, url_for

from backend.analysis import document
from backend.analysis.findings import describe
from backend.api.upload import analysis_id, read_upload
from backend.errors import ApiError
from backend.imaging import anatomy, heatmap
from backend.ml.classifier import get_classifier
from backend.store import get_store
from backend.utils.helpers import create_thumbnail, download_image, fit_to_box, upload_to_storage

bp = Blueprint("analyze", __name__)


@bp.post("/analyze")
def analyze():
    config = current_app.config
    upload = read_upload()
    new_id = analysis_id()

    # decode
    gray = download_image(upload.source, window=upload.window, max_pixels=config["MAX_PIXELS"])

    # model
    classifier = get_classifier()
    prediction = classifier.predict(gray)

    # images, at display size: the 400 px slice, its body and lung masks, the activation overlay
    slice_400 = fit_to_box(gray, (400, 400))
    pixels = np.asarray(slice_400)
    body = anatomy.body_mask(pixels)
    activation = heatmap.activation_map(prediction.cam, pixels.shape, body)
    overlay_400 = heatmap.overlay(pixels, activation, body)
    images = {
        "file_url": upload_to_storage(slice_400),
        "heatmap_url": upload_to_storage(overlay_400),
        "file_thumbnail": create_thumbnail(slice_400),
        "heatmap_thumbnail": create_thumbnail(overlay_400),
    }

    # document
    findings, recommendations = describe(prediction.label, prediction.confidence, prediction.probabilities,
                                         activation, body, anatomy.lung_mask(pixels, body))
    fields = {
        "id": new_id,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "filename": upload.filename,
        "sha256": _sha256(upload.source),
        "prediction": prediction.as_json(),
        "findings": findings,
        "recommendations": recommendations,
        "model": {"name": classifier.name, "version": classifier.version},
    }
    response, stored = document.build(fields, images)
    stored = document.fit_to_budget(stored, slice_400, overlay_400, config["FIRESTORE_COLLECTION"], config["DOC_BUDGET_BYTES"])

    # store: create-only, so a retried upload (same Idempotency-Key) finds the first write
    saved = get_store().create(stored)
    replayed = saved["created_at"] != stored["created_at"]
    if replayed and saved.get("sha256") != stored["sha256"]:
        raise ApiError(422, "idempotency_key_reused", "This Idempotency-Key was already used for a different image.")

    # response
    body_json = jsonify({**response, "created_at": saved["created_at"]})
    headers = {"Location": url_for("analyses.get_analysis", analysis_id=new_id)}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return body_json, 201, headers


def _sha256(source) -> str:
    """Fingerprint of the upload as sent (base64 text for JSON uploads), to recognise replays."""
    return hashlib.sha256(source.encode() if isinstance(source, str) else source).hexdigest()
