"""One JSON error shape for every API failure: {"error": code, "message": sentence}."""
from flask import jsonify
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    """An error meant for the client: raised anywhere, answered as JSON by the handler below."""

    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}  # e.g. WWW-Authenticate on a 401, Retry-After on a 429


def error_response(status, code, message, headers=None, **details):
    """The JSON error; `details` are extra fields for the few errors that need them (e.g. /ready's checks)."""
    response = jsonify(error=code, message=message, **details)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _http_error(exc):
    code = (exc.name or "error").lower().replace(" ", "_")
    messages = {
        413: "The upload is larger than this service accepts (MAX_UPLOAD_MB).",
        404: "There is nothing at this address.",
        405: "This address does not accept that HTTP method.",
        400: "The request could not be read.",
    }
    return error_response(exc.code or 500, code, messages.get(exc.code, exc.description))


def _no_sniffing(response):
    """Browsers must take every answer as the type it says it is (a JSON error is never HTML)."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def init_app(app):
    app.register_error_handler(ApiError, lambda e: error_response(e.status, e.code, e.message, e.headers))
    app.register_error_handler(HTTPException, _http_error)
    app.after_request(_no_sniffing)

    @app.errorhandler(Exception)
    def _unexpected(exc):
        app.logger.exception("unhandled error")
        return error_response(500, "internal_error", "The service failed to handle this request; it has been logged.")
