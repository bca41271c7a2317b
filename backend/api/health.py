"""GET /health: for load balancers, Docker's health check and a curious user."""
from flask import Blueprint, jsonify

from backend.ml.classifier import get_classifier
from backend.store import get_store

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    classifier = get_classifier()
    return jsonify(status="ok", store=get_store().name,
                   model={"name": classifier.name, "version": classifier.version})
