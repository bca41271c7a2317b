"""Choose the store backend by configuration (STORE) and keep one per app."""
from flask import current_app

from backend.config import ConfigError, check_key_file, google_credentials
from backend.errors import error_response
from backend.store.base import AnalysisStore, IdempotencyConflict, StoreUnavailable


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
    workers, so a bad start is one line, not a failed boot per worker (this module imports backend.metrics only
    when needed, after the master has set up prometheus_client's multiprocess folder)."""
    name = config["STORE"]
    if name not in BACKENDS:
        raise ConfigError(f"STORE={name!r} is not one of: {', '.join(BACKENDS)}")
    if name == "firestore":
        check_key_file(config["FIRESTORE_CREDENTIALS"])


def init_app(app):
    check_settings(app.config)
    name = app.config["STORE"]
    app.extensions["store"] = BACKENDS[name](app)
    app.register_error_handler(StoreUnavailable, _unavailable)
    app.register_error_handler(IdempotencyConflict, lambda exc: error_response(
        422, "idempotency_key_reused", "This Idempotency-Key was already used for a different request "
                                       "(another file, window, frame or file name)."))


def _unavailable(exc):
    from backend import metrics

    metrics.STORE_ERRORS.labels(store=get_store().name).inc()
    return error_response(503, "store_unavailable",
                          "The database is not reachable right now; nothing was saved. Try again shortly.")


def get_store() -> AnalysisStore:
    return current_app.extensions["store"]
