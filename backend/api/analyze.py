"""POST /analyze and POST /analyses/<id>/reanalyze: authenticate, read the slice, analyse, record, answer.

Both record through `backend.analysis.record`: the objects (full-size slice and heatmap, the
original) first, then the document.
"""
import json
import uuid

from flask import Blueprint, current_app, jsonify, request, url_for

from backend import ratelimit
from backend.analysis import document, objects
from backend.analysis.capacity import heavy_work_slot
from backend.analysis.pipeline import analyze_slice
from backend.analysis.record import Stores, record_slice
from backend.api.analyses import image_missing, not_found, owner_scope
from backend.api.upload import Upload, read_upload
from backend.auth import authenticate
from backend.errors import InvalidInput
from backend.images import get_image_store
from backend.imaging.limits import Limits
from backend.ml.classifier import get_classifier
from backend.store import get_store
from backend.store.base import IdempotencyKey

bp = Blueprint("analyze", __name__)


@bp.post("/analyze")
def analyze():
    caller = authenticate()
    ratelimit.check(caller)
    upload = read_upload()
    key = _idempotency_key(upload.request_fingerprint, caller.uid)
    if key is not None and (earlier := get_store().find_by_key(key)) is not None:
        return _answer(earlier, replayed=True)
    return _analyse_and_store(upload, caller.uid, key)


@bp.post("/analyses/<analysis_id>/reanalyze")
def reanalyze(analysis_id):
    """The current model on the stored original, with the original request's window and frame."""
    caller = authenticate()
    ratelimit.check(caller)
    key = _idempotency_key(json.dumps(["reanalyze", analysis_id]), caller.uid)
    if key is not None and (replay := get_store().find_by_key(key)) is not None:
        return _answer(replay, replayed=True)
    earlier = get_store().get(analysis_id, owner=owner_scope(caller))
    if earlier is None:
        raise not_found(analysis_id)
    original = objects.entry(earlier, "original")
    store = get_image_store()
    data = store.get(original["path"]) if original and store else None
    if data is None:
        raise image_missing(analysis_id, "original")
    parameters = earlier.get("parameters", {})
    upload = Upload(data, earlier["filename"], parameters.get("window", "lung"), parameters.get("frame"))
    return _analyse_and_store(upload, earlier["owner"], key, reanalysis_of=analysis_id)


def _analyse_and_store(upload: Upload, owner: str, key: IdempotencyKey | None, **extra):
    config = current_app.config
    classifier = get_classifier()
    with heavy_work_slot():
        result = analyze_slice(upload.data, classifier, window=upload.window, frame=upload.frame,
                               limits=Limits.from_config(config))

    fields = document.new_fields(uuid.uuid4().hex, owner, upload.filename, upload.sha256, result, classifier,
                                 window=upload.window, frame=upload.frame)
    body, replayed = record_slice(Stores.of(current_app), {**fields, **extra}, result, upload.data, key)
    return _answer(body, replayed)


def _idempotency_key(request_fingerprint: str, owner: str) -> IdempotencyKey | None:
    """The caller's Idempotency-Key for the request `request_fingerprint` stands for, None without one."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not (key.isascii() and key.isprintable()):
        raise InvalidInput("invalid_idempotency_key")
    return IdempotencyKey(owner, key, request_fingerprint)


def _answer(body: dict, replayed=False):
    """201 with the analysis; a replay answers with the stored analysis, as the first request stored it."""
    headers = {"Location": url_for("analyses.get_analysis", analysis_id=body["id"])}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return jsonify(body), 201, headers
