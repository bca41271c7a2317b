"""Choose the auth mode by configuration (AUTH_MODE), keep one per app, and name the caller.

Every protected route starts with `caller = authenticate()`; the answer is kept for the
rest of the request.
"""
from flask import current_app, g, request

from backend.auth.base import AuthMode, User
from backend.config import ConfigError


def _none(app):
    from backend.auth.local import LocalOwner

    return LocalOwner(app.config["HOST"], app.config["ALLOW_ANONYMOUS"], app.config["CORS_ORIGINS"])


def _firebase(app):
    from backend.auth.firebase import FirebaseAuth

    return FirebaseAuth.from_config(app.config)


MODES = {"none": _none, "firebase": _firebase}


def init_app(app):
    name = app.config["AUTH_MODE"]
    if name not in MODES:
        raise ConfigError(f"AUTH_MODE={name!r} is not one of: {', '.join(MODES)}")
    app.extensions["auth"] = MODES[name](app)


def get_auth() -> AuthMode:
    return current_app.extensions["auth"]


def authenticate() -> User:
    """The caller of this request; ApiError 401 (or 403) when it may not call."""
    if "caller" not in g:
        g.caller = get_auth().authenticate(request)
    return g.caller
