"""The store contract every backend keeps: create, get, list newest first with a cursor, delete; and the same
for studies, with a conditional update.

Documents go in and come out as the JSON-ready dicts the API serves: `id` (str), `owner` (the
uid that created it) and `created_at` (ISO 8601 UTC string, e.g. "2026-11-24T10:00:00.123456Z")
are always present. Reads and deletes take an `owner`: another owner's document is not there.
"""

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime

from backend.errors import InvalidInput, ServiceError

# The owner of every analysis made without accounts (AUTH_MODE=none), and of rows stored before accounts.
LOCAL_OWNER = "local"


class IdempotencyConflict(ServiceError):
    """The Idempotency-Key was first used for a different request."""

    def __init__(self):
        super().__init__("idempotency_key_reused")


@dataclass(frozen=True)
class IdempotencyKey:
    """A client's Idempotency-Key, scoped to its owner, with the request it stands for."""

    owner: str
    key: str
    request: str  # fingerprint of everything that shapes the analysis (file, window, frame, name)

    @property
    def record_id(self) -> str:
        """The key record's id: a hash, so neither the key nor the owner shows in it."""
        return hashlib.sha256(f"{self.owner}\0{self.key}".encode()).hexdigest()


class AnalysisStore:
    name = "base"

    def create(self, doc: dict, key: IdempotencyKey | None = None) -> dict:
        """Store `doc` (a new, random id) and, atomically with it, `key`; return what is stored.

        If `key` is already recorded, nothing is written and the analysis stored under it comes
        back (a replay: its id differs from doc["id"]), or IdempotencyConflict if it was recorded
        for another request. Two identical uploads racing with one key store one analysis.
        """
        raise NotImplementedError

    def find_by_key(self, key: IdempotencyKey) -> dict | None:
        """The analysis stored under `key`, None if the key is new; IdempotencyConflict as above."""
        raise NotImplementedError

    def get(self, analysis_id: str, owner: str | None = None) -> dict | None:
        """The document, if it exists and belongs to `owner` (None: whoever owns it, for administrators)."""
        raise NotImplementedError

    def list(self, limit: int, cursor: str | None = None, owner: str | None = None) -> tuple[list[dict], str | None]:
        """`owner`'s documents (None: everyone's), newest first (created_at, then id, both descending).

        Returns (items, next_cursor)."""
        raise NotImplementedError

    def delete(self, analysis_id: str, owner: str | None = None) -> bool:
        """Remove the document and its key record if it belongs to `owner` (None: anyone's).

        False when there was none."""
        raise NotImplementedError

    # Studies (POST /studies): one document per study, beside the analyses, its job state included
    # (status, progress, attempts, lease_owner, lease_until), so any instance can answer and claim it.

    def create_study(self, doc: dict) -> dict:
        """Store a new study document (a new, random id); return it."""
        raise NotImplementedError

    def get_study(self, study_id: str, owner: str | None = None) -> dict | None:
        """The study, if it exists and belongs to `owner` (None: whoever owns it)."""
        raise NotImplementedError

    def list_studies(
        self, limit: int, cursor: str | None = None, owner: str | None = None, study_uid: str | None = None
    ) -> "tuple[list[dict], str | None]":
        """`owner`'s studies (None: everyone's), only those of the DICOM study `study_uid` when given, newest first
        (created_at, then id, both descending). Returns (items, next_cursor)."""
        raise NotImplementedError

    def update_study(self, study_id: str, changes: dict, expect: dict | None = None) -> dict | None:
        """Replace the top-level fields in `changes`, atomically, only if the study exists and each field named
        in `expect` has that value now (a missing field counts as None). Returns the updated document, or None
        (nothing written) when the study is gone or the precondition failed: two workers cannot both claim it."""
        raise NotImplementedError

    def delete_study(self, study_id: str, owner: str | None = None) -> bool:
        """Remove the study document if it belongs to `owner` (None: anyone's); False when there was none."""
        raise NotImplementedError

    def unfinished_studies(self, limit: int = 100) -> "list[dict]":
        """Studies whose status is queued or running, or done with their results' delivery pending, oldest first
        (the local queue resumes them)."""
        raise NotImplementedError

    def ping(self, timeout_s: float):
        """Raise StoreUnavailable unless the store answers a cheap read within about `timeout_s` (/ready)."""
        self.list(1)

    def close(self):
        """Release connections (tests and shutdown)."""


def encode_cursor(doc: dict) -> str:
    raw = json.dumps([doc["created_at"], doc["id"]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,200}")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """(created_at, id) of the last item of the previous page; InvalidInput for a malformed cursor."""
    try:
        if _CURSOR.fullmatch(cursor):  # the shape encode_cursor makes, before anything is parsed
            created_at, analysis_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            if isinstance(created_at, str) and isinstance(analysis_id, str):
                datetime.fromisoformat(created_at)  # every backend can order by it
                return created_at, analysis_id
    except (binascii.Error, ValueError, TypeError, RecursionError):
        pass
    raise InvalidInput("invalid_cursor")


def preconditions_hold(doc: dict, expect: dict | None) -> bool:
    """Whether each field named in `expect` has that value in `doc` (a missing field counts as None)."""
    return all(doc.get(name) == value for name, value in (expect or {}).items())
