"""Choose the auth mode by configuration (AUTH_MODE), keep one per app, and name the caller.

Every protected route starts with `caller = authenticate()`; the answer is kept for the
rest of the request.
"""
from flask import current_app, g, request

from backend.auth.base import AuthMode, User
from backend.auth.loopback import refuse_open_host
from backend.config import ConfigError


def _none(app):
    from backend.auth.local import LocalOwner

    return LocalOwner(app.config["CORS_ORIGINS"])


def _firebase(app):
    from backend.auth.firebase import FirebaseAuth

    return FirebaseAuth.from_config(app.config)


MODES = {"none": _none, "firebase": _firebase}


def check_settings(config):
    """ConfigError for auth settings that cannot work, found from the settings alone: gunicorn's master
    checks them before it starts workers, so a bad start is one line, not a failed boot per worker."""
    name = config["AUTH_MODE"]
    if name not in MODES:
        raise ConfigError(f"AUTH_MODE={name!r} is not one of: {', '.join(MODES)}")
    if name == "none":
        refuse_open_host(config["HOST"], config["ALLOW_ANONYMOUS"])
    if name == "firebase":
        from backend.auth.firebase import check_settings as check_firebase_settings

        check_firebase_settings(config)


def init_app(app):
    check_settings(app.config)
    app.extensions["auth"] = MODES[app.config["AUTH_MODE"]](app)


def get_auth() -> AuthMode:
    return current_app.extensions["auth"]


def authenticate() -> User:
    """The caller of this request; NotAllowed (401, 403) when it may not call."""
    if "caller" not in g:
        g.caller = get_auth().authenticate(request)
    return g.caller
