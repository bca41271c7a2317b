"""The store contract every backend keeps: create, get, list newest first with a cursor, delete.

Documents go in and come out as the JSON-ready dicts the API serves: `id` (str) and
`created_at` (ISO 8601 UTC string, e.g. "2026-11-24T10:00:00.123456Z") are always present.
"""
import base64
import binascii
import json
from datetime import datetime

from backend.errors import ApiError


class StoreUnavailable(Exception):
    """The backing database could not be reached in time; the API answers 503."""


class AnalysisStore:
    name = "base"

    def create(self, doc: dict) -> dict:
        """Store `doc` under doc["id"] unless that id exists; return the stored document either way.

        Create-only semantics make retried uploads (same Idempotency-Key, same id) write once.
        """
        raise NotImplementedError

    def get(self, analysis_id: str) -> dict | None:
        raise NotImplementedError

    def list(self, limit: int, cursor: str | None = None) -> tuple[list[dict], str | None]:
        """Newest first (created_at, then id, both descending); returns (items, next_cursor)."""
        raise NotImplementedError

    def delete(self, analysis_id: str) -> bool:
        """Remove the document; False when there was none."""
        raise NotImplementedError

    def ping(self, timeout_s: float):
        """Raise StoreUnavailable unless the store answers a cheap read within about `timeout_s` (/ready)."""
        self.list(1)

    def close(self):
        """Release connections (tests and shutdown)."""


def encode_cursor(doc: dict) -> str:
    raw = json.dumps([doc["created_at"], doc["id"]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """(created_at, id) of the last item of the previous page; ApiError 400 for a malformed cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, analysis_id = json.loads(raw)
        if isinstance(created_at, str) and isinstance(analysis_id, str):
            datetime.fromisoformat(created_at)  # every backend can order by it
            return created_at, analysis_id
    except (binascii.Error, ValueError, TypeError):
        pass
    raise ApiError(400, "invalid_cursor", "The cursor is not one this service issued; start again without it.")
