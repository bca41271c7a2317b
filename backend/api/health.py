"""GET /health (liveness: cheap, no dependencies) and GET /ready (readiness: the model is loaded and the
document store and the image store answer)."""
from flask import Blueprint, current_app, jsonify

from backend.errors import Unavailable
from backend.images import get_image_store
from backend.ml.classifier import get_classifier
from backend.store import get_store

bp = Blueprint("health", __name__)

READY_TIMEOUT_S = 2  # a load balancer's probe waits a few seconds at most


@bp.get("/health")
def health():
    classifier = get_classifier()
    return jsonify(status="ok", store=get_store().name,
                   model={"name": classifier.name, "version": classifier.version})


@bp.get("/ready")
def ready():
    """200 when this instance can analyse and store now, else 503 naming what is not ready."""
    not_ready = {}
    if current_app.extensions.get("classifier") is None:
        not_ready["model"] = "the model is not loaded"
    checks = {"store": get_store(), "image_store": get_image_store()}  # the image store is None with IMAGE_STORE=none
    for check, store in checks.items():
        if store is None:
            continue
        try:
            store.ping(READY_TIMEOUT_S)
        except Exception as exc:  # whatever the backend raises, the answer is "not ready", logged with its cause
            current_app.logger.warning("readiness: the %s %s did not answer: %s", store.name, check, exc)
            not_ready[check] = f"the {store.name} {check.replace('_', ' ')} did not answer within {READY_TIMEOUT_S} s"
    if not_ready:
        raise Unavailable("not_ready", reasons="; ".join(not_ready.values()), extra={"not_ready": not_ready})
    return jsonify(status="ready", checks={"model": "ok", **{check: "ok" for check, store in checks.items() if store}})
