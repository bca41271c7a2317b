"""The web dashboard: frontend/index.html at `/` and the files under frontend/ at /static/<path>."""

from flask import Blueprint, send_from_directory

from backend.auth import get_auth
from backend.config import BACKEND_DIR

FRONTEND_DIR = BACKEND_DIR.parent / "frontend"

# The page loads only this service's own files and calls only its API; images arrive as data: URLs.
# No 'unsafe-inline' anywhere: scripts are ES modules and all styling lives in the stylesheet.
# The auth mode adds only the origins its sign-in needs (Firebase Auth's endpoints, or the emulator).
BASE_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:", "blob:"],  # blob: the kept images, fetched with the user's token
    "connect-src": ["'self'"],
    "frame-src": ["'none'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}


def content_security_policy(extra: dict[str, list[str]]) -> str:
    directives = {
        name: [s for s in sources if s != "'none'" or not extra.get(name)] + extra.get(name, [])
        for name, sources in BASE_POLICY.items()
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


# Set explicitly: module scripts are refused unless served as JavaScript, and some systems'
# mimetypes tables map .js to text/plain.
MIMETYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}

bp = Blueprint("web", __name__)


def _send(path):
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
    # File names carry no content hash, so browsers revalidate every time; ETag and
    # Last-Modified make an unchanged file a cheap 304.
    response = send_from_directory(FRONTEND_DIR, path, mimetype=MIMETYPES.get(suffix), max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/")
def index():
    response = _send("index.html")
    response.headers["Content-Security-Policy"] = content_security_policy(get_auth().csp_sources())
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


@bp.get("/static/<path:path>")
def static(path):
    return _send(path)
