"""Reading an analysis request: a multipart `file`, or JSON {"image": data URL or base64, "filename"}.

Both ways give the same Upload: the file's bytes (base64 already decoded), a printable display
name, and the parameters that change the result (`window`, `frame`).
"""
import hashlib
import io
import json
import re
from dataclasses import dataclass
from functools import cached_property

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from backend.errors import InvalidInput
from backend.utils.helpers import base64_payload

MAX_FILENAME = 255
MAX_FRAME_DIGITS = 20


@dataclass
class Upload:
    data: bytes
    filename: str
    window: str
    frame: int | None

    @cached_property
    def sha256(self) -> str:
        """The file's fingerprint, the same whichever way it was sent."""
        return hashlib.sha256(self.data).hexdigest()

    @property
    def request_fingerprint(self) -> str:
        """Everything that shapes the stored analysis: an Idempotency-Key replays only this request."""
        return json.dumps([self.sha256, self.window, self.frame, self.filename])


def read_upload() -> Upload:
    if request.is_json:
        return _from_json()
    return _from_form()


def _from_json():
    try:
        body = json.loads(request.get_data(cache=False))
    except (ValueError, RecursionError) as exc:
        raise InvalidInput("invalid_json") from exc
    if not isinstance(body, dict) or not isinstance(body.get("image"), str) or not body["image"]:
        raise InvalidInput("missing_image")
    if body.get("window") is not None and not isinstance(body["window"], str):
        raise InvalidInput("invalid_window")
    if body.get("filename") is not None and not isinstance(body["filename"], str):
        raise InvalidInput("invalid_field", field="filename", expected="a string")
    frame = body.get("frame")
    if frame is not None and (isinstance(frame, bool) or not isinstance(frame, int)):
        raise InvalidInput("invalid_frame")
    return Upload(base64_payload(body["image"]), _clean_filename(body.get("filename")),
                  body.get("window") or "lung", frame)


def _from_form():
    request.get_data(cache=True)  # kept, so a form werkzeug cannot read can be read again below
    try:
        form, files = request.form, request.files
        if "file" not in files and request.mimetype == "multipart/form-data":
            form, files = _reparse_tolerantly()
    except RequestEntityTooLarge as exc:  # under MAX_UPLOAD_MB, so it is werkzeug's limit on form parts
        raise InvalidInput("too_many_form_fields") from exc
    upload = files.get("file")
    if upload is None:
        raise InvalidInput("missing_file")
    return Upload(upload.read(), _clean_filename(upload.filename), form.get("window") or "lung",
                  _frame(form.get("frame")))


def _reparse_tolerantly():
    """Werkzeug drops the whole form when a part's headers are not UTF-8 (a filename in a legacy
    encoding); parse again with those header bytes replaced, keeping the file itself as sent."""
    boundary = request.mimetype_params.get("boundary", "")
    fixed = utf8_part_headers(request.get_data(cache=True), boundary.encode("latin-1", "replace"))
    config = current_app.config
    parser = FormDataParser(max_form_memory_size=config["MAX_FORM_MEMORY_SIZE"],
                            max_form_parts=config["MAX_FORM_PARTS"])
    _, form, files = parser.parse(io.BytesIO(fixed), "multipart/form-data", len(fixed), {"boundary": boundary})
    return form, files


def utf8_part_headers(body: bytes, boundary: bytes) -> bytes:
    """`body` with each part's header lines made valid UTF-8 and every other byte as it was.

    A part starts after a delimiter (CRLF, or the start of the body, then `--boundary`) and its headers end at
    the first blank line. The delimiter never occurs inside a part's content (RFC 2046), so content that merely
    looks like headers is never touched.
    """
    separator = b"\r\n--" + boundary
    preamble, *parts = (b"\r\n" + body).split(separator)
    fixed = []
    for part in parts:
        end = part.find(b"\r\n\r\n")
        if part.startswith(b"--") or end < 0:  # the closing delimiter, or a part without headers
            fixed.append(part)
        else:
            fixed.append(part[:end].decode("utf-8", "replace").encode() + part[end:])
    return separator.join([preamble, *fixed])[2:]


def _frame(raw) -> int | None:
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_FRAME_DIGITS):
        raise InvalidInput("invalid_frame")
    return int(raw)


def _clean_filename(name) -> str:
    """The base name only, printable, at most 255 characters ("upload" when none was given)."""
    name = re.split(r"[\\/]", str(name or ""))[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch != "\ufffd").strip()
    return name[:MAX_FILENAME] or "upload"
