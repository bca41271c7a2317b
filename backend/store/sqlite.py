"""The embedded default store: one SQLite file under DATA_DIR, safe across threads and processes.

Each operation opens its own short-lived connection (cheap for SQLite), so no connection is
shared between threads; WAL mode and a busy timeout let several processes read and write.
"""
import contextlib
import json
import sqlite3
from pathlib import Path

from backend.store.base import AnalysisStore, decode_cursor, encode_cursor

SCHEMA = """
CREATE TABLE IF NOT EXISTS analyses (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    document TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS analyses_newest_first ON analyses (created_at DESC, id DESC);
"""


class SQLiteStore(AnalysisStore):
    name = "sqlite"

    def __init__(self, data_dir):
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(data_dir) / "analyses.sqlite3"
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextlib.contextmanager
    def _connect(self):
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:  # one transaction: committed on success, rolled back on error
                yield db
        finally:
            db.close()

    def create(self, doc):
        with self._connect() as db:
            db.execute("INSERT OR IGNORE INTO analyses (id, created_at, document) VALUES (?, ?, ?)",
                       (doc["id"], doc["created_at"], json.dumps(doc)))
            row = db.execute("SELECT document FROM analyses WHERE id = ?", (doc["id"],)).fetchone()
        return json.loads(row[0])

    def get(self, analysis_id):
        with self._connect() as db:
            row = db.execute("SELECT document FROM analyses WHERE id = ?", (analysis_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def list(self, limit, cursor=None):
        query, params = "SELECT document FROM analyses", []
        if cursor:
            created_at, analysis_id = decode_cursor(cursor)
            query += " WHERE (created_at, id) < (?, ?)"
            params += [created_at, analysis_id]
        query += " ORDER BY created_at DESC, id DESC LIMIT ?"
        with self._connect() as db:
            rows = db.execute(query, params + [limit + 1]).fetchall()
        items = [json.loads(row[0]) for row in rows[:limit]]
        return items, (encode_cursor(items[-1]) if len(rows) > limit else None)

    def delete(self, analysis_id):
        with self._connect() as db:
            return db.execute("DELETE FROM analyses WHERE id = ?", (analysis_id,)).rowcount > 0
