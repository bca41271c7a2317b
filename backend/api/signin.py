"""GET /auth/config: how the dashboard signs in (AUTH_MODE and the Firebase web config, all public)."""

from flask import Blueprint, jsonify

from backend.auth import get_auth

bp = Blueprint("signin", __name__)


@bp.get("/auth/config")
def auth_config():
    return jsonify(get_auth().web_config())
