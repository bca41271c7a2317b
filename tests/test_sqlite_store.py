"""The embedded store under several threads and several processes at once."""

import json
import multiprocessing
import sqlite3
from concurrent.futures import ThreadPoolExecutor

from backend.store.sqlite import SQLiteStore


def _write_many(data_dir, prefix, count):
    store = SQLiteStore(data_dir)
    for i in range(count):
        store.create({"id": f"{prefix}-{i}", "created_at": f"2026-11-24T10:00:00.{i:06d}Z", "owner": "local"})


def test_made_on_first_run(tmp_path):
    store = SQLiteStore(tmp_path / "nested" / "data")
    assert (tmp_path / "nested" / "data" / "analyses.sqlite3").is_file()
    assert store.list(10) == ([], None)


def test_concurrent_threads_and_processes_lose_nothing(tmp_path):
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_write_many, args=(tmp_path, f"p{n}", 40)) for n in range(3)]
    for process in processes:
        process.start()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: _write_many(tmp_path, f"t{n}", 40), range(4)))
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    store = SQLiteStore(tmp_path)
    ids, cursor = [], None
    while True:
        items, cursor = store.list(100, cursor)
        ids += [item["id"] for item in items]
        if not cursor:
            break
    assert len(ids) == len(set(ids)) == 7 * 40


def test_a_database_from_before_accounts_migrates_to_the_local_owner(tmp_path):
    """The schema and a row exactly as the service stored them before accounts existed."""
    with sqlite3.connect(tmp_path / "analyses.sqlite3") as db:
        db.executescript("""
            CREATE TABLE analyses (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, document TEXT NOT NULL);
            CREATE INDEX analyses_newest_first ON analyses (created_at DESC, id DESC);""")
        db.execute(
            "INSERT INTO analyses VALUES (?, ?, ?)",
            (
                "old",
                "2026-11-20T10:00:00.000000Z",
                json.dumps({"id": "old", "created_at": "2026-11-20T10:00:00.000000Z", "filename": "a.png"}),
            ),
        )
    db.close()
    store = SQLiteStore(tmp_path)
    store.create({"id": "new", "created_at": "2026-11-24T10:00:00.000000Z", "owner": "alice"})
    assert [d["id"] for d in store.list(10, owner="local")[0]] == ["old"]
    assert store.get("old", owner="local") == {
        "id": "old",
        "created_at": "2026-11-20T10:00:00.000000Z",
        "filename": "a.png",
        "owner": "local",
    }
    assert store.get("old", owner="alice") is None
    with sqlite3.connect(tmp_path / "analyses.sqlite3") as db:
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT document FROM analyses WHERE owner = ? "
            "ORDER BY created_at DESC, id DESC LIMIT 5",
            ("local",),
        ).fetchall()
    db.close()
    assert "analyses_by_owner" in str(plan)  # the listing per owner is served by the (owner, created_at) index
    SQLiteStore(tmp_path)  # opening it again changes nothing
    assert [d["id"] for d in store.list(10)[0]] == ["new", "old"]
