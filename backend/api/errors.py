"""The one place where errors become HTTP: every answer is `{"error": code, "message": sentence}`.

Domain code raises `backend.errors.ServiceError`; werkzeug's own refusals (no such route, a method
the route does not take, a body over MAX_UPLOAD_MB) get their catalogue code too; anything else is
logged and answered `internal_error`, with nothing of its internals.
"""
from flask import current_app, jsonify
from werkzeug.exceptions import HTTPException

from backend import metrics
from backend.errors import ImageStoreUnavailable, ServiceError, StoreUnavailable

# werkzeug's exceptions by status -> catalogue code; any other is answered as a 400 or a 500 is.
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "request_entity_too_large",
              431: "request_header_fields_too_large", 500: "internal_error"}


def error_response(error: ServiceError):
    response = jsonify(error=error.code, message=error.message, **error.extra)
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def _service_error(error: ServiceError):
    if isinstance(error, (StoreUnavailable, ImageStoreUnavailable)):
        current_app.logger.warning("%s unavailable: %s", error.store, error)
        metrics.STORE_ERRORS.labels(store=error.store).inc()
    return error_response(error)


def _http_error(exc: HTTPException):
    """werkzeug's refusals in the catalogue's words, keeping their protocol headers (Allow on a 405)."""
    code = HTTP_CODES.get(exc.code) or HTTP_CODES[400 if exc.code < 500 else 500]
    response = error_response(ServiceError(code))
    response.status_code = exc.code  # a rarer 4xx keeps its own status
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _unexpected(exc: Exception):
    current_app.logger.exception("unhandled error")
    return error_response(ServiceError("internal_error"))


def _no_sniffing(response):
    """Browsers must take every answer as the type it says it is (a JSON error is never HTML)."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def init_app(app):
    app.register_error_handler(ServiceError, _service_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    app.after_request(_no_sniffing)

