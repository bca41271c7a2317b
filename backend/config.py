"""Configuration, read only from environment variables (documented in .env.example)."""
import os
from pathlib import Path

BACKEND_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL_PATH = BACKEND_DIR / "ml" / "weights" / "covid-ct-effnet-lite0.pt"
# ./data at the repository root, however the service is started (python backend/app.py or
# cd backend && python app.py), so both ways see the same history.
DEFAULT_DATA_DIR = BACKEND_DIR.parent / "data"


class ConfigError(Exception):
    """A setting the service cannot start with; `python backend/app.py` prints it as one line and exits 1."""


def _str(name, default):
    """The variable's value, or the default when it is unset or empty (as in .env.example)."""
    return os.environ.get(name, "").strip() or default


def _int(name, default):
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _float(name, default):
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def from_env():
    """Return the app's settings as a dict of upper-case Flask config keys."""
    return {
        "HOST": _str("HOST", "127.0.0.1"),
        "PORT": _int("PORT", 5000),
        "STORE": _str("STORE", "sqlite").lower(),
        "DATA_DIR": _str("DATA_DIR", str(DEFAULT_DATA_DIR)),
        "MAX_CONTENT_LENGTH": _int("MAX_UPLOAD_MB", 20) * 1024 * 1024,
        "MAX_PIXELS": _int("MAX_PIXELS", 50_000_000),
        "CORS_ORIGINS": [o.strip() for o in os.environ.get("CORS_ORIGINS", "").split(",") if o.strip()],
        "MODEL_PATH": _str("MODEL_PATH", str(DEFAULT_MODEL_PATH)),
        "TORCH_THREADS": _int("TORCH_THREADS", 0),
        "LOG_LEVEL": _str("LOG_LEVEL", "INFO").upper(),
        "DOC_BUDGET_BYTES": _int("DOC_BUDGET_BYTES", 256 * 1024),
        # Firestore (STORE=firestore)
        "FIRESTORE_PROJECT": _str("GOOGLE_CLOUD_PROJECT", None) or _str("FIREBASE_PROJECT_ID", None),
        "FIRESTORE_CREDENTIALS": _str("FIREBASE_CREDENTIALS", None) or _str("GOOGLE_APPLICATION_CREDENTIALS", None),
        "FIRESTORE_DATABASE": _str("FIRESTORE_DATABASE", "(default)"),
        "FIRESTORE_COLLECTION": _str("FIRESTORE_COLLECTION", "analyses"),
        "STORE_TIMEOUT_S": _float("STORE_TIMEOUT_S", 10.0),
    }
