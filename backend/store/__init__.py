"""Choose the store backend by configuration (STORE) and keep one per app."""
from flask import current_app

from backend.store.base import AnalysisStore, StoreUnavailable  # noqa: F401  (re-exported)


def _sqlite(app):
    from backend.store.sqlite import SQLiteStore

    return SQLiteStore(app.config["DATA_DIR"])


def _firestore(app):
    from backend.store.firestore import FirestoreStore

    return FirestoreStore.from_config(app.config)


BACKENDS = {"sqlite": _sqlite, "firestore": _firestore}


def init_app(app):
    name = app.config["STORE"]
    if name not in BACKENDS:
        raise RuntimeError(f"STORE={name!r} is not one of: {', '.join(BACKENDS)}")
    app.extensions["store"] = BACKENDS[name](app)


def get_store() -> AnalysisStore:
    return current_app.extensions["store"]
