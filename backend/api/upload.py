"""Reading an analysis request: a multipart `file`, or JSON {"image": data URL or base64, "filename"}."""
import re
import uuid
from dataclasses import dataclass

from flask import request

from backend.errors import ApiError

IDEMPOTENCY_NAMESPACE = uuid.UUID("8a7c1d5e-3f0b-4c58-9d3e-2b6f0c9a41e7")
MAX_FILENAME = 255


@dataclass
class Upload:
    source: bytes | str  # raw bytes (multipart) or a data URL / base64 string (JSON)
    filename: str
    window: str


def read_upload() -> Upload:
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("image"), str) or not body["image"]:
            raise ApiError(400, "missing_image", 'Send JSON like {"image": "<data URL or base64>", "filename": "slice.png"}.')
        return Upload(body["image"], _clean_filename(body.get("filename")), str(body.get("window") or "lung"))
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "missing_file", "Send the image in a multipart form field named 'file'.")
    return Upload(upload.read(), _clean_filename(upload.filename), request.form.get("window") or "lung")


def analysis_id() -> str:
    """A new id, or the same id for every retry that carries the same Idempotency-Key header."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return uuid.uuid4().hex
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise ApiError(400, "invalid_idempotency_key", "The Idempotency-Key header must be 1 to 255 printable characters.")
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, key).hex


def _clean_filename(name) -> str:
    """The base name only, printable, at most 255 characters ("upload" when none was given)."""
    name = re.split(r"[\\/]", str(name or ""))[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:MAX_FILENAME] or "upload"
