"""The embedded default store: one SQLite file under DATA_DIR, safe across threads and processes.

Each thread keeps its own connection, so none is shared between threads and none is closed
after every operation (closing the last connection to a WAL database checkpoints it, an fsync
that cost more than the write itself). WAL mode and a busy timeout let several processes
read and write.
"""

import contextlib
import json
import sqlite3
import threading
from pathlib import Path

from backend.store.base import (
    LOCAL_OWNER,
    AnalysisStore,
    IdempotencyConflict,
    decode_cursor,
    encode_cursor,
    preconditions_hold,
)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS analyses (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    document TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '{LOCAL_OWNER}'
);
CREATE INDEX IF NOT EXISTS analyses_newest_first ON analyses (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS analyses_by_owner ON analyses (owner, created_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    record_id TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    analysis_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_keys_by_analysis ON idempotency_keys (analysis_id);
CREATE TABLE IF NOT EXISTS studies (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    owner TEXT NOT NULL,
    study_uid TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    document TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS studies_by_owner ON studies (owner, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS studies_newest_first ON studies (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS studies_unfinished ON studies (status, created_at);
"""


def migrate(db):
    """Databases made before accounts get the owner column; their analyses belong to the local owner."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(analyses)")}
    if columns and "owner" not in columns:
        db.execute(f"ALTER TABLE analyses ADD COLUMN owner TEXT NOT NULL DEFAULT '{LOCAL_OWNER}'")


def document(row) -> dict:
    """A stored row (document, owner) as the API's dict; the owner column is the one that counts."""
    return {**json.loads(row[0]), "owner": row[1]}


class SQLiteStore(AnalysisStore):
    name = "sqlite"

    def __init__(self, data_dir):
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(data_dir) / "analyses.sqlite3"
        self._threads = threading.local()
        self._opened = []  # every thread's connection, closed by close()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            migrate(db)
            db.executescript(SCHEMA)

    @contextlib.contextmanager
    def _connect(self):
        db = getattr(self._threads, "db", None)
        if db is None:
            # Used by this thread only; close() may come from another, hence no same-thread check.
            db = self._threads.db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self._opened.append(db)
        with db:  # one transaction: committed on success, rolled back on error
            yield db

    def create(self, doc, key=None):
        with self._connect() as db:
            if key is not None:  # the insert takes the write lock: a racing twin waits, then finds the key
                inserted = db.execute(
                    "INSERT OR IGNORE INTO idempotency_keys (record_id, request, analysis_id) VALUES (?, ?, ?)",
                    (key.record_id, key.request, doc["id"]),
                ).rowcount
                if not inserted:
                    return self._find_by_key(db, key)
            db.execute(
                "INSERT INTO analyses (id, created_at, document, owner) VALUES (?, ?, ?, ?)",
                (doc["id"], doc["created_at"], json.dumps(doc), doc["owner"]),
            )
        return doc

    def find_by_key(self, key):
        with self._connect() as db:
            return self._find_by_key(db, key)

    def _find_by_key(self, db, key):
        row = db.execute(
            "SELECT request, analysis_id FROM idempotency_keys WHERE record_id = ?", (key.record_id,)
        ).fetchone()
        if row is None:
            return None
        if row[0] != key.request:
            raise IdempotencyConflict()
        return self._get(db, row[1])

    def get(self, analysis_id, owner=None):
        with self._connect() as db:
            return self._get(db, analysis_id, owner)

    @staticmethod
    def _get(db, analysis_id, owner=None):
        row = db.execute(
            "SELECT document, owner FROM analyses WHERE id = ? AND (? IS NULL OR owner = ?)",
            (analysis_id, owner, owner),
        ).fetchone()
        return document(row) if row else None

    def list(self, limit, cursor=None, owner=None):
        conditions, params = [], []
        if owner is not None:
            conditions.append("owner = ?")
            params.append(owner)
        if cursor:
            created_at, analysis_id = decode_cursor(cursor)
            conditions.append("(created_at, id) < (?, ?)")
            params += [created_at, analysis_id]
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._connect() as db:
            rows = db.execute(
                f"SELECT document, owner FROM analyses{where} ORDER BY created_at DESC, id DESC LIMIT ?",
                params + [limit + 1],
            ).fetchall()
        items = [document(row) for row in rows[:limit]]
        return items, (encode_cursor(items[-1]) if len(rows) > limit else None)

    def delete(self, analysis_id, owner=None):
        with self._connect() as db:
            if self._get(db, analysis_id, owner) is None:
                return False
            db.execute("DELETE FROM idempotency_keys WHERE analysis_id = ?", (analysis_id,))
            return db.execute("DELETE FROM analyses WHERE id = ?", (analysis_id,)).rowcount > 0

    def create_study(self, doc):
        with self._connect() as db:
            db.execute(
                "INSERT INTO studies (id, created_at, owner, study_uid, status, document) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    doc["id"],
                    doc["created_at"],
                    doc["owner"],
                    doc.get("study_uid") or "",
                    doc["status"],
                    json.dumps(doc),
                ),
            )
        return doc

    def get_study(self, study_id, owner=None):
        with self._connect() as db:
            return self._get_study(db, study_id, owner)

    @staticmethod
    def _get_study(db, study_id, owner=None):
        row = db.execute(
            "SELECT document FROM studies WHERE id = ? AND (? IS NULL OR owner = ?)", (study_id, owner, owner)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def list_studies(self, limit, cursor=None, owner=None, study_uid=None):
        conditions, params = [], []
        for column, value in (("owner", owner), ("study_uid", study_uid)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        if cursor:
            created_at, study_id = decode_cursor(cursor)
            conditions.append("(created_at, id) < (?, ?)")
            params += [created_at, study_id]
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._connect() as db:
            rows = db.execute(
                f"SELECT document FROM studies{where} ORDER BY created_at DESC, id DESC LIMIT ?", params + [limit + 1]
            ).fetchall()
        items = [json.loads(row[0]) for row in rows[:limit]]
        return items, (encode_cursor(items[-1]) if len(rows) > limit else None)

    def update_study(self, study_id, changes, expect=None):
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # the read and the write in one write transaction: no other writer between
            doc = self._get_study(db, study_id)
            if doc is None or not preconditions_hold(doc, expect):
                return None
            doc = {**doc, **changes}
            db.execute(
                "UPDATE studies SET status = ?, document = ? WHERE id = ?", (doc["status"], json.dumps(doc), study_id)
            )
        return doc

    def delete_study(self, study_id, owner=None):
        with self._connect() as db:
            return (
                db.execute(
                    "DELETE FROM studies WHERE id = ? AND (? IS NULL OR owner = ?)", (study_id, owner, owner)
                ).rowcount
                > 0
            )

    def unfinished_studies(self, limit=100):
        with self._connect() as db:
            rows = db.execute(
                "SELECT document FROM studies WHERE status IN ('queued', 'running') OR (status = 'done' AND "
                "json_extract(document, '$.results_delivery.state') = 'pending') ORDER BY created_at LIMIT ?",
                (limit,),
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def close(self):
        for db in self._opened:
            db.close()
        self._opened.clear()
        self._threads = threading.local()
