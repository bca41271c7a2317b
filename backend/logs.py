"""Logging: a request id on every request and log line, one access line per request, text or JSON.

Every response carries `X-Request-ID`: the caller's when it sent a sane one (a proxy's or a
client's, so one id follows a request through every hop), else a new one. `LOG_FORMAT=json`
makes each log line one JSON object for log collectors; the default is readable text.
"""

import logging
import re
import sys
import time
import uuid

from flask import g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

from backend.config import ConfigError

REQUEST_ID_HEADER = "X-Request-ID"
# Ids we pass on: short, printable and free of anything a log line or header could trip on.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = ["levelname", "name", "request_id", "message"]

access_log = logging.getLogger("backend.access")


class RequestIdFilter(logging.Filter):
    """Give every record a `request_id`: the current request's, or "-" outside a request."""

    def filter(self, record):
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def make_formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(
            JSON_FIELDS, rename_fields={"levelname": "level", "name": "logger"}, timestamp="time"
        )  # ISO 8601, UTC
    return logging.Formatter(TEXT_FORMAT)


def make_handler(log_format: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(log_format))
    handler.addFilter(RequestIdFilter())
    handler.service_handler = True  # so a second create_app replaces it instead of adding another
    return handler


def configure(level: str, log_format: str):
    """One stderr handler on the root logger in the chosen format (others, e.g. pytest's, are kept)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "service_handler", False)]:
        root.removeHandler(handler)
    root.addHandler(make_handler(log_format))
    root.setLevel(level)


def _start():
    g.request_started = time.perf_counter()
    sent = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = sent if SANE_REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex


def _finish(response):
    response.headers[REQUEST_ID_HEADER] = g.request_id
    duration_ms = 1000 * (time.perf_counter() - g.request_started)
    size = response.content_length if response.content_length is not None else 0
    access_log.info(
        "%s %s %s %d B %.1f ms",
        request.method,
        request.path,
        response.status_code,
        size,
        duration_ms,
        extra={
            "request_id": g.request_id,
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "bytes": size,
            "duration_ms": round(duration_ms, 1),
        },
    )
    return response


def init_app(app):
    if app.config["LOG_FORMAT"] not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT={app.config['LOG_FORMAT']!r} is not one of: text, json")
    configure(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
    app.before_request(_start)
    app.after_request(_finish)
