"""The embedded store under several threads and several processes at once."""
import multiprocessing
from concurrent.futures import ThreadPoolExecutor

from backend.store.sqlite import SQLiteStore


def _write_many(data_dir, prefix, count):
    store = SQLiteStore(data_dir)
    for i in range(count):
        store.create({"id": f"{prefix}-{i}", "created_at": f"2026-11-24T10:00:00.{i:06d}Z"})


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
