"""Every setting the service reads, in one typed object validated once at start (pydantic-settings).

Settings come from environment variables, or a .env file in the working directory or a folder
above it (variables already set win); an empty value means the default. Each setting is described
once, here: `--help`, `.env.example` and the README's settings table are made from these
descriptions (`env_example()`, `markdown_table()`; tests keep the files equal to them). Where two
names exist for one thing, the first wins and the second is only a documented fallback, read the
same way by every part of the service.

The Flask app keeps the validated values under the same names in `app.config`.
"""

import contextlib
import json
from pathlib import Path
from typing import Annotated, Literal

import dotenv
from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

BACKEND_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL_PATH = BACKEND_DIR / "ml" / "weights" / "covid-ct-effnet-lite0.pt"
# ./data at the repository root, however the service is started (python backend/app.py or
# cd backend && python app.py), so both ways see the same history.
DEFAULT_DATA_DIR = BACKEND_DIR.parent / "data"
# The rate limit where there are accounts: with AUTH_MODE=none the one local user is not limited.
ACCOUNTS_RATE_LIMIT = "60/minute"


class ConfigError(Exception):
    """A setting the service cannot start with; the entry points print it as one line and exit 1."""


def setting(
    default,
    meaning: str,
    section: str,
    *,
    shown: str | None = None,
    names: tuple[str, str] | None = None,
    **constraints,
):
    """A setting's default, one-line meaning and section. `shown`: the default as .env.example writes it (None: the
    default itself, empty for None). `names`: (its name, an older name read only when its name is unset)."""
    extra = {"section": section, "shown": shown}
    if names:
        extra["fallback"] = names[1]
        meaning += f" (`{names[1]}` is read when this is unset)"
    return Field(
        default,
        description=meaning,
        json_schema_extra=extra,
        validation_alias=AliasChoices(*names) if names else None,
        **constraints,
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_ignore_empty=True, populate_by_name=True)

    # --- Server ---
    HOST: str = setting(
        "127.0.0.1",
        "interface to listen on; 0.0.0.0 for every interface (the Docker image does), "
        "which needs accounts or ALLOW_ANONYMOUS=1",
        "Server",
    )
    PORT: int = setting(5000, "port", "Server")
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = setting("INFO", "logging level", "Server")
    LOG_FORMAT: Literal["text", "json"] = setting(
        "text", "`text`, or `json`: every log line one JSON object with `request_id`", "Server"
    )
    METRICS: bool = setting(True, "`0` turns `GET /metrics` (Prometheus) off", "Server", shown="1")
    CORS_ORIGINS: Annotated[list[str], NoDecode] = setting(
        [], "comma-separated origins allowed to call the API from browsers; empty: same origin only", "Server", shown=""
    )

    # --- gunicorn ---
    WEB_CONCURRENCY: int | None = setting(
        None, "gunicorn worker processes, each loading the model once; empty: one per CPU core", "gunicorn"
    )
    THREADS: int = setting(4, "threads per gunicorn worker (gthread)", "gunicorn")
    WORKER_TIMEOUT_S: int = setting(120, "gunicorn kills and replaces a worker silent this long", "gunicorn")
    GRACEFUL_TIMEOUT_S: int = setting(
        25, "on SIGTERM, time for requests in flight to finish (inside Kubernetes' 30 s)", "gunicorn"
    )
    PROMETHEUS_MULTIPROC_DIR: str | None = setting(
        None,
        "where gunicorn workers share their metrics (emptied at start); empty: a fresh temporary folder",
        "gunicorn",
    )

    # --- Uploads ---
    MAX_UPLOAD_MB: int = setting(20, "larger uploads get 413", "Uploads")
    MAX_PIXELS: int = setting(
        16_777_216, "images with more pixels (4096 x 4096) get 413, read from the header before decoding", "Uploads"
    )
    DECODE_BUDGET_MB: int = setting(
        64,
        "what one decoded image (its samples and its 8-bit slice) or an inflated "
        "deflate-DICOM may take; more gets 413 before decoding",
        "Uploads",
    )
    HEAVY_WORK_SLOTS: int | None = setting(
        None, "analyses (decode + model + images) running at once; more wait; empty: the number of cores", "Uploads"
    )
    HEAVY_WORK_WAIT_S: float = setting(
        5.0, "how long an upload waits for a slot before a 503 with Retry-After", "Uploads", shown="5"
    )

    # --- Model ---
    MODEL_PATH: str = setting(str(DEFAULT_MODEL_PATH), "the model weights", "Model", shown="")
    MODEL_CACHE_DIR: str | None = setting(
        None,
        "folder where the first start keeps the model's compiled form (about 15 MB), which the next starts load "
        "instead of compiling it (about 1 s each); empty: DATA_DIR/model-cache",
        "Model",
    )
    TORCH_THREADS: int | None = setting(
        None,
        "CPU threads for the model, per process; empty: PyTorch's default, under gunicorn cores / workers",
        "Model",
    )

    # --- Store ---
    STORE: Literal["sqlite", "firestore"] = setting("sqlite", "`sqlite` (embedded) or `firestore`", "Store")
    DATA_DIR: str = setting(
        str(DEFAULT_DATA_DIR),
        "folder of the SQLite file and (`IMAGE_STORE=local`) of "
        "`images/`, made on first run; empty: ./data at the repository "
        "root",
        "Store",
        shown="",
    )
    DOC_BUDGET_BYTES: int = setting(
        256 * 1024, "size budget of a stored document (Firestore's limit is 1 MiB)", "Store"
    )
    STORE_TIMEOUT_S: float = setting(
        10.0,
        "how long a store call (documents or images, retries included) may take before the request gets 503",
        "Store",
        shown="10",
    )

    # --- Images ---
    IMAGE_STORE: Literal["local", "gcs", "none"] = setting(
        "local",
        "where the 400 px images and originals are kept: `local` (files under DATA_DIR/images), `gcs` (a "
        "Firebase Storage / Cloud Storage bucket) or `none` (thumbnails only)",
        "Images",
    )
    STORAGE_BUCKET: str | None = setting(
        None,
        "`gcs`: the bucket, `<project>.firebasestorage.app` (`<project>.appspot.com` for older projects)",
        "Images",
    )
    STORAGE_EMULATOR_HOST: str | None = setting(
        None,
        "`gcs` against an emulator, e.g. `http://127.0.0.1:4443` (fake-gcs-server), with anonymous credentials",
        "Images",
    )

    # --- Google Cloud and Firebase: one project and one credential for Firestore, Storage and Auth ---
    GOOGLE_CLOUD_PROJECT: str | None = setting(
        None,
        "the Google Cloud / Firebase project of Firestore, Storage and Auth",
        "Google Cloud and Firebase",
        names=("GOOGLE_CLOUD_PROJECT", "FIREBASE_PROJECT_ID"),
    )
    GOOGLE_APPLICATION_CREDENTIALS: str | None = setting(
        None,
        "a service-account key file for Firestore, Storage and Auth; empty: Application Default Credentials",
        "Google Cloud and Firebase",
        names=("GOOGLE_APPLICATION_CREDENTIALS", "FIREBASE_CREDENTIALS"),
    )
    FIRESTORE_EMULATOR_HOST: str | None = setting(
        None, "`firestore` against the emulator, e.g. `127.0.0.1:8080`", "Google Cloud and Firebase"
    )
    FIRESTORE_DATABASE: str = setting(
        "(default)", "the Firestore database", "Google Cloud and Firebase", shown='"(default)"'
    )
    FIRESTORE_COLLECTION: str = setting("analyses", "the Firestore collection of analyses", "Google Cloud and Firebase")

    # --- Accounts ---
    AUTH_MODE: Literal["none", "firebase"] = setting(
        "none", "`none` (one local owner, no sign-in) or `firebase` (Firebase Authentication ID tokens)", "Accounts"
    )
    ALLOW_ANONYMOUS: bool = setting(
        False,
        "`1` lets `AUTH_MODE=none` listen on a non-loopback `HOST`; otherwise the service refuses to start",
        "Accounts",
        shown="0",
    )
    AUTH_CHECK_REVOKED: bool = setting(
        True,
        "`firebase`: also refuse disabled users and revoked sessions (one Auth lookup per request)",
        "Accounts",
        shown="1",
    )
    FIREBASE_API_KEY: str | None = setting(
        None, "`firebase`: the project's web API key, sent to the dashboard; required", "Accounts"
    )
    FIREBASE_AUTH_DOMAIN: str | None = setting(
        None, "`firebase`: the dashboard's auth domain; empty: `<project>.firebaseapp.com`", "Accounts"
    )
    FIREBASE_GOOGLE_SIGN_IN: bool = setting(False, '`firebase`: `1` shows "Sign in with Google"', "Accounts", shown="0")
    FIREBASE_AUTH_EMULATOR_HOST: str | None = setting(
        None, "`firebase` against the Auth emulator (`127.0.0.1:9099`); only with a `demo-*` project", "Accounts"
    )

    # --- Rate limit ---
    RATE_LIMIT: str | None = setting(
        None,
        "analyses per owner on `POST /analyze` (`limits` notation, several with `;`), over it 429; empty: "
        f"{ACCOUNTS_RATE_LIMIT} with `AUTH_MODE=firebase`, no limit with `AUTH_MODE=none` (one local user)",
        "Rate limit",
    )
    RATE_LIMIT_STORAGE_URI: str = setting(
        "memory://",
        "where the counters live; `redis://host:6379` for several instances (`pip install redis`)",
        "Rate limit",
    )

    # --- Studies ---
    STUDY_QUEUE: Literal["local", "pubsub"] = setting(
        "local",
        "where studies run: `local` (threads in the service process) or `pubsub` (Cloud Pub/Sub and "
        "`python -m backend worker` processes)",
        "Studies",
    )
    STUDY_WORKERS: int = setting(
        1, "`local`: studies analysed at once per process (each batch uses every core)", "Studies", ge=1
    )
    STUDY_MAX_SLICES: int = setting(1000, "more DICOM files in one study upload get 413", "Studies", ge=1)
    STUDY_MAX_UPLOAD_MB: int = setting(
        1024, "a study upload, or a ZIP's declared or inflated contents, over this gets 413", "Studies", ge=1
    )
    STUDY_BATCH_SIZE: int = setting(
        16, "slices of a study decoded and analysed at a time (one forward pass per core)", "Studies", ge=1
    )
    STUDY_LEASE_S: float = setting(
        60.0,
        "how long a worker's claim on a study lasts without progress; a dead worker's study is resumed after it",
        "Studies",
        shown="60",
        gt=0,
    )
    STUDY_MAX_ATTEMPTS: int = setting(
        3,
        "claims of one study (each after its worker died) before it is marked `failed` (`study_interrupted`)",
        "Studies",
        ge=1,
    )
    PUBSUB_PROJECT: str | None = setting(
        None, "`pubsub`: the project of the topic and subscription; empty: GOOGLE_CLOUD_PROJECT", "Studies"
    )
    PUBSUB_TOPIC: str = setting(
        "ct-studies", "`pubsub`: the topic the service publishes studies to (made when missing)", "Studies"
    )
    PUBSUB_SUBSCRIPTION: str = setting(
        "ct-studies-workers", "`pubsub`: the subscription workers pull from (made when missing)", "Studies"
    )
    PUBSUB_ACK_DEADLINE_S: int = setting(
        60,
        "`pubsub`: the subscription's ack deadline (10-600 s); a killed worker's study is redelivered after it",
        "Studies",
        ge=10,
        le=600,
    )
    PUBSUB_EMULATOR_HOST: str | None = setting(
        None, "`pubsub` against the official emulator, e.g. `127.0.0.1:8085`", "Studies"
    )

    # --- DICOM ---
    DICOM_PORT: int | None = setting(
        None, "port of the DICOM listener (C-STORE of CT series, C-ECHO); empty: no listener", "DICOM"
    )
    DICOM_HOST: str = setting(
        "127.0.0.1", "interface of the DICOM listener; another than loopback needs `DICOM_ALLOWED_AES`", "DICOM"
    )
    DICOM_AE_TITLE: str = setting(
        "CTANALYSIS", "the service's AE title: called by senders, calling when it sends results", "DICOM"
    )
    DICOM_ALLOWED_AES: Annotated[list[str], NoDecode] = setting(
        [],
        "comma-separated calling AE titles the listener accepts, others are rejected at association; empty: "
        "any (with a loopback `DICOM_HOST` only)",
        "DICOM",
        shown="",
    )
    DICOM_STABLE_S: float = setting(
        10.0,
        "a received series is complete when no new instance came for this long and its associations have ended",
        "DICOM",
        shown="10",
    )
    DICOM_OWNER: str = setting(
        "dicom",
        "owner of the studies made from received series with `AUTH_MODE=firebase` (`local` with `AUTH_MODE=none`)",
        "DICOM",
    )
    DICOM_RESULTS_TO: str | None = setting(
        None,
        "where the SR and key images are sent: `AE@host:port` (C-STORE) or an `http(s)://` DICOMweb base "
        "(STOW-RS); empty: kept in the service only",
        "DICOM",
    )
    DICOM_RESULTS_RETRY_S: float = setting(
        120.0,
        "how long after a study is done sending its results is tried again, with backoff, before it counts as failed",
        "DICOM",
        shown="120",
    )

    @field_validator("CORS_ORIGINS", "DICOM_ALLOWED_AES", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        return [o.strip() for o in value.split(",") if o.strip()] if isinstance(value, str) else value

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _upper(cls, value):
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("LOG_FORMAT", "STORE", "IMAGE_STORE", "AUTH_MODE", "STUDY_QUEUE", mode="before")
    @classmethod
    def _lower(cls, value):
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("RATE_LIMIT")
    @classmethod
    def _a_rate(cls, value):
        from limits import parse_many

        if value is not None:
            try:
                parse_many(value)
            except ValueError:
                raise ValueError("is not a rate such as 60/minute") from None
        return value

    @property
    def rate_limit(self) -> str | None:
        """The limit in force: RATE_LIMIT, else the default for the auth mode (None: no limit)."""
        return self.RATE_LIMIT or (ACCOUNTS_RATE_LIMIT if self.AUTH_MODE == "firebase" else None)


def load(overrides: dict | None = None) -> Settings:
    """The settings from the environment, `overrides` (by setting name) winning; ConfigError in one line."""
    try:
        return Settings(**(overrides or {}))
    except ValidationError as exc:
        raise ConfigError("; ".join(_problem(error) for error in exc.errors())) from None


# pydantic's error types, said as the rest of the service's start-up errors say them
_WHAT = {
    "int_parsing": "is not a whole number",
    "int_from_float": "is not a whole number",
    "float_parsing": "is not a number",
    "bool_parsing": "is not a yes/no value: use 1 or 0",
}


def _problem(error: dict) -> str:
    name = ".".join(str(part) for part in error["loc"]) or "settings"
    if error["type"] == "literal_error":
        return f"{name}={error['input']!r} is not one of: {error['ctx']['expected'].replace(' or ', ', ')}"
    what = _WHAT.get(error["type"], error["msg"].removeprefix("Value error, "))
    return f"{name}={error['input']!r} {what}"


def flask_config(settings: Settings) -> dict:
    """app.config: every setting under its own name (RATE_LIMIT: the limit in force), plus what Flask reads."""
    return {
        **settings.model_dump(),
        "MAX_CONTENT_LENGTH": settings.MAX_UPLOAD_MB * 2**20,
        "MAX_FORM_PARTS": 16,  # a form needs 'file', 'window' and 'frame'; werkzeug's default is 1000
        "RATE_LIMIT": settings.rate_limit,
    }


def check_key_file(path: str | None):
    """ConfigError unless the configured key file (GOOGLE_APPLICATION_CREDENTIALS) holds a service-account key:
    the Admin SDK and the Cloud Storage client accept nothing else, and would otherwise fail while each
    gunicorn worker boots, with a traceback."""
    if not path:
        return
    where = f"The key file {path!r} (GOOGLE_APPLICATION_CREDENTIALS or FIREBASE_CREDENTIALS)"
    try:
        key = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        raise ConfigError(f"{where} cannot be read as JSON") from None
    if not isinstance(key, dict) or key.get("type") != "service_account":
        raise ConfigError(
            f"{where} is not a service-account key (Firebase console: Project settings, "
            "Service accounts, Generate new private key)"
        )


@contextlib.contextmanager
def google_credentials(setting_name: str):
    """Turn a Google client's refusal at start (no credential found, a key file with missing fields) into a
    ConfigError that names the setting which needed it, instead of a traceback."""
    from google.auth.exceptions import DefaultCredentialsError  # only where a Google client is built

    try:
        yield
    except ValueError as exc:  # google-auth's MalformedError is one too: check it first
        raise ConfigError(f"{setting_name} cannot be used: {exc}") from None
    except DefaultCredentialsError:
        raise ConfigError(
            f"{setting_name} found no Google credential: set GOOGLE_APPLICATION_CREDENTIALS to a "
            "service-account key file, or run where Application Default Credentials exist"
        ) from None


def load_dotenv_file():
    """Read .env from the working directory or the nearest folder above it, if there is one."""
    dotenv.load_dotenv(dotenv.find_dotenv(usecwd=True), override=False)


def _documented():
    """(name, field, shown default) of every setting, in declaration order."""
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra
        shown = extra["shown"]
        if shown is None:
            shown = "" if field.default is None else str(field.default)
        yield name, field, extra, shown


def env_example() -> str:
    """.env.example: every setting with its default (empty: derived, see its comment), grouped by section."""
    lines = [
        "# Every setting the service reads, with its default. Export them, or copy this file to .env",
        "# (read at start from the working directory or a folder above it; variables already set win).",
        "# An empty value means the default. Generated from backend/config.py (config.env_example()).",
    ]
    section = None
    for name, field, extra, shown in _documented():
        if extra["section"] != section:
            section = extra["section"]
            lines += ["", f"# --- {section} ---"]
        lines.append(f"{name}={shown} ".ljust(34) + f"# {_plain(field.description)}")  # a space before #: dotenv
        if "fallback" in extra:
            lines.append(f"# {extra['fallback']}=".ljust(34) + f"# read only when {name} is unset")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The README's settings table."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field, _, shown in _documented():
        default = f"`{shown}`" if shown else "empty"
        rows.append(f"| `{name}` | {default} | {field.description} |")
    return "\n".join(rows)


def _plain(text: str) -> str:
    return text.replace("`", "")
