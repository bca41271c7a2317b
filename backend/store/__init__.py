"""Choose the store backend by configuration (STORE) and keep one per app."""
from flask import current_app

from backend.config import ConfigError, check_key_file, google_credentials
from backend.store.base import AnalysisStore


def _sqlite(app):
    from backend.store.sqlite import SQLiteStore

    return SQLiteStore(app.config["DATA_DIR"])


def _firestore(app):
    from backend.store.firestore import FirestoreStore

    with google_credentials("STORE=firestore"):
        return FirestoreStore.from_config(app.config)


BACKENDS = {"sqlite": _sqlite, "firestore": _firestore}


def check_settings(config):
    """ConfigError for an unknown STORE or an unusable key file: gunicorn's master checks them before it starts
    workers, so a bad start is one line, not a failed boot per worker."""
    name = config["STORE"]
    if name not in BACKENDS:
        raise ConfigError(f"STORE={name!r} is not one of: {', '.join(BACKENDS)}")
    if name == "firestore":
        check_key_file(config["GOOGLE_APPLICATION_CREDENTIALS"])


def init_app(app):
    check_settings(app.config)
    name = app.config["STORE"]
    app.extensions["store"] = BACKENDS[name](app)


def get_store() -> AnalysisStore:
    return current_app.extensions["store"]
