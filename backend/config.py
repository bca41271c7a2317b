"""Configuration, read only from environment variables (documented in .env.example)."""
import contextlib
import json
import os
from pathlib import Path

import dotenv

BACKEND_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL_PATH = BACKEND_DIR / "ml" / "weights" / "covid-ct-effnet-lite0.pt"
# ./data at the repository root, however the service is started (python backend/app.py or
# cd backend && python app.py), so both ways see the same history.
DEFAULT_DATA_DIR = BACKEND_DIR.parent / "data"
ENV_EXAMPLE = BACKEND_DIR.parent / ".env.example"


class ConfigError(Exception):
    """A setting the service cannot start with; `python backend/app.py` prints it as one line and exits 1."""


def _str(name, default):
    """The variable's value, or the default when it is unset or empty (as in .env.example)."""
    return os.environ.get(name, "").strip() or default


def _int(name, default):
    return _number(name, default, int, "a whole number")


def _bool(name, default):
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={value!r} is not a yes/no value: use 1 or 0")


def _float(name, default):
    return _number(name, default, float, "a number")


def _number(name, default, kind, what):
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not {what}") from None


def from_env():
    """Return the app's settings as a dict of upper-case Flask config keys."""
    return {
        "HOST": _str("HOST", "127.0.0.1"),
        "PORT": _int("PORT", 5000),
        "STORE": _str("STORE", "sqlite").lower(),
        "DATA_DIR": _str("DATA_DIR", str(DEFAULT_DATA_DIR)),
        "MAX_CONTENT_LENGTH": _int("MAX_UPLOAD_MB", 20) * 1024 * 1024,
        "MAX_PIXELS": _int("MAX_PIXELS", 16_777_216),
        "DECODE_BUDGET_MB": _int("DECODE_BUDGET_MB", 64),
        "MAX_FORM_PARTS": 16,  # a form needs 'file', 'window' and 'frame'; werkzeug's default is 1000
        "HEAVY_WORK_SLOTS": _int("HEAVY_WORK_SLOTS", 0),
        "HEAVY_WORK_WAIT_S": _float("HEAVY_WORK_WAIT_S", 5.0),
        "CORS_ORIGINS": [o.strip() for o in os.environ.get("CORS_ORIGINS", "").split(",") if o.strip()],
        "MODEL_PATH": _str("MODEL_PATH", str(DEFAULT_MODEL_PATH)),
        "TORCH_THREADS": _int("TORCH_THREADS", 0),
        "LOG_LEVEL": _str("LOG_LEVEL", "INFO").upper(),
        "LOG_FORMAT": _str("LOG_FORMAT", "text").lower(),
        "METRICS": _str("METRICS", "1") not in ("0", "false", "no", "off"),
        # gunicorn (backend/gunicorn.conf.py); 0 workers: one per CPU core
        "WEB_CONCURRENCY": _int("WEB_CONCURRENCY", 0),
        "THREADS": _int("THREADS", 4),
        "WORKER_TIMEOUT_S": _int("WORKER_TIMEOUT_S", 120),
        "GRACEFUL_TIMEOUT_S": _int("GRACEFUL_TIMEOUT_S", 25),
        "DOC_BUDGET_BYTES": _int("DOC_BUDGET_BYTES", 256 * 1024),
        # Firestore (STORE=firestore)
        "FIRESTORE_PROJECT": _str("GOOGLE_CLOUD_PROJECT", None) or _str("FIREBASE_PROJECT_ID", None),
        "FIRESTORE_CREDENTIALS": _str("FIREBASE_CREDENTIALS", None) or _str("GOOGLE_APPLICATION_CREDENTIALS", None),
        "FIRESTORE_DATABASE": _str("FIRESTORE_DATABASE", "(default)"),
        "FIRESTORE_COLLECTION": _str("FIRESTORE_COLLECTION", "analyses"),
        "STORE_TIMEOUT_S": _float("STORE_TIMEOUT_S", 10.0),
        # Full-size images and originals (IMAGE_STORE=local files under DATA_DIR/images, gcs, or none)
        "IMAGE_STORE": _str("IMAGE_STORE", "local").lower(),
        "STORAGE_BUCKET": _str("STORAGE_BUCKET", None),
        # Accounts (AUTH_MODE) and the per-owner rate limit
        "AUTH_MODE": _str("AUTH_MODE", "none").lower(),
        "ALLOW_ANONYMOUS": _bool("ALLOW_ANONYMOUS", False),
        "AUTH_CHECK_REVOKED": _bool("AUTH_CHECK_REVOKED", True),
        "FIREBASE_PROJECT": _str("FIREBASE_PROJECT_ID", None) or _str("GOOGLE_CLOUD_PROJECT", None),
        "FIREBASE_AUTH_EMULATOR_HOST": _str("FIREBASE_AUTH_EMULATOR_HOST", None),
        "FIREBASE_API_KEY": _str("FIREBASE_API_KEY", None),
        "FIREBASE_AUTH_DOMAIN": _str("FIREBASE_AUTH_DOMAIN", None),
        "FIREBASE_GOOGLE_SIGN_IN": _bool("FIREBASE_GOOGLE_SIGN_IN", False),
        "RATE_LIMIT": _str("RATE_LIMIT", "60/minute"),
        "RATE_LIMIT_STORAGE_URI": _str("RATE_LIMIT_STORAGE_URI", "memory://"),
        # DICOM: the C-STORE listener (off unless DICOM_PORT is set) and where results go
        "DICOM_PORT": _int("DICOM_PORT", 0),
        "DICOM_HOST": _str("DICOM_HOST", "127.0.0.1"),
        "DICOM_AE_TITLE": _str("DICOM_AE_TITLE", "CTANALYSIS"),
        "DICOM_ALLOWED_AES": [a.strip() for a in os.environ.get("DICOM_ALLOWED_AES", "").split(",") if a.strip()],
        "DICOM_STABLE_S": _float("DICOM_STABLE_S", 10.0),
        "DICOM_OWNER": _str("DICOM_OWNER", "dicom"),
        "DICOM_RESULTS_TO": _str("DICOM_RESULTS_TO", None),
        "DICOM_RESULTS_RETRY_S": _float("DICOM_RESULTS_RETRY_S", 120.0),
    }


def check_key_file(path: str | None):
    """ConfigError unless the configured key file (FIREBASE_CREDENTIALS, else GOOGLE_APPLICATION_CREDENTIALS)
    holds a service-account key: the Admin SDK and the Cloud Storage client accept nothing else, and would
    otherwise fail while each gunicorn worker boots, with a traceback."""
    if not path:
        return
    where = f"The key file {path!r} (FIREBASE_CREDENTIALS or GOOGLE_APPLICATION_CREDENTIALS)"
    try:
        key = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        raise ConfigError(f"{where} cannot be read as JSON") from None
    if not isinstance(key, dict) or key.get("type") != "service_account":
        raise ConfigError(f"{where} is not a service-account key (Firebase console: Project settings, "
                          "Service accounts, Generate new private key)")


@contextlib.contextmanager
def google_credentials(setting: str):
    """Turn a Google client's refusal at start (no credential found, a key file with missing fields) into a
    ConfigError that names the setting which needed it, instead of a traceback."""
    from google.auth.exceptions import DefaultCredentialsError  # only where a Google client is built

    try:
        yield
    except ValueError as exc:  # google-auth's MalformedError is one too: check it first
        raise ConfigError(f"{setting} cannot be used: {exc}") from None
    except DefaultCredentialsError:
        raise ConfigError(f"{setting} found no Google credential: set GOOGLE_APPLICATION_CREDENTIALS to a "
                          "service-account key file, or run where Application Default Credentials exist") from None


def load_dotenv_file():
    """Read .env from the working directory or the nearest folder above it, if there is one."""
    dotenv.load_dotenv(dotenv.find_dotenv(usecwd=True), override=False)


def settings_help() -> str:
    """Every setting with its default and meaning, as .env.example lists them (for --help)."""
    return ENV_EXAMPLE.read_text() if ENV_EXAMPLE.is_file() else "See .env.example in the repository."
