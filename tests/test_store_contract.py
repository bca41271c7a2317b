"""The store contract, run against every backend: SQLite and Firestore (the official emulator)."""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from backend.errors import InvalidInput
from backend.store.base import IdempotencyConflict, IdempotencyKey, encode_cursor
from backend.store.firestore import FirestoreStore
from backend.store.sqlite import SQLiteStore
from tests.fixtures.data import REPO
from tests.fixtures.firestore_emulator import PROJECT


@pytest.fixture(params=["sqlite", pytest.param("firestore", marks=pytest.mark.firestore)])
def store(request, tmp_path):
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path / "data")
    else:
        request.getfixturevalue("firestore_env")
        store = FirestoreStore(PROJECT, timeout_s=10, emulator=os.environ["FIRESTORE_EMULATOR_HOST"])
    yield store
    store.close()


def analysis(analysis_id, created_at, **extra):
    """A document shaped like the service core's, with every kind of value it holds."""
    return {
        "id": analysis_id,
        "owner": "alice",
        "created_at": created_at,
        "filename": "693_UNCR.dcm",
        "sha256": "ab" * 32,
        "prediction": {"label": "COVID", "confidence": 0.8125, "probabilities": {"COVID": 0.8125, "NonCOVID": 0.1875}},
        "findings": ["Ground-glass opacity pattern in both lower lobes."],
        "recommendations": [],
        "model": {"name": "ctnet", "version": "1"},
        "file_thumbnail": "data:image/jpeg;base64,/9j/4AAQ",
        "heatmap_url": "data:image/jpeg;base64,/9j/4AAQ",
        **extra,
    }


def ids(items):
    return [item["id"] for item in items]


def test_create_then_get_returns_the_document_exactly(store):
    doc = analysis("a1", "2026-11-24T10:00:00.123456Z")
    assert store.create(doc) == doc
    assert store.get("a1") == doc  # created_at round-trips to the microsecond, "Z" and all


def test_a_key_stores_once_and_replays_the_first_analysis(store):
    key = IdempotencyKey("local", "upload-1", "request-1")
    first = analysis("a1", "2026-11-24T10:00:00.000001Z", filename="first.png")
    assert store.find_by_key(key) is None
    assert store.create(first, key) == first
    assert store.create(analysis("a2", "2026-11-24T11:00:00.000002Z"), key) == first  # nothing new written
    assert store.find_by_key(key) == first
    assert ids(store.list(10)[0]) == ["a1"]


def test_a_key_used_for_another_request_conflicts(store):
    store.create(analysis("a1", "2026-11-24T10:00:00.000001Z"), IdempotencyKey("local", "upload-1", "request-1"))
    other = IdempotencyKey("local", "upload-1", "request-2")
    with pytest.raises(IdempotencyConflict):
        store.create(analysis("a2", "2026-11-24T11:00:00.000002Z"), other)
    with pytest.raises(IdempotencyConflict):
        store.find_by_key(other)
    assert ids(store.list(10)[0]) == ["a1"]


def test_keys_are_scoped_per_owner(store):
    store.create(analysis("a1", "2026-11-24T10:00:00.000001Z"), IdempotencyKey("alice", "upload-1", "r"))
    store.create(analysis("a2", "2026-11-24T11:00:00.000002Z"), IdempotencyKey("bob", "upload-1", "r"))
    assert sorted(ids(store.list(10)[0])) == ["a1", "a2"]


def test_deleting_an_analysis_frees_its_key(store):
    key = IdempotencyKey("local", "upload-1", "request-1")
    store.create(analysis("a1", "2026-11-24T10:00:00.000001Z"), key)
    assert store.delete("a1")
    assert store.find_by_key(key) is None
    second = analysis("a2", "2026-11-24T11:00:00.000002Z")
    assert store.create(second, key) == second


def test_racing_creates_with_one_key_store_one_analysis(store):
    key = IdempotencyKey("local", "upload-1", "request-1")
    docs = [analysis(f"a{i}", f"2026-11-24T10:00:00.00000{i}Z") for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda doc: store.create(doc, key), docs))
    assert len({r["id"] for r in results}) == 1
    assert ids(store.list(10)[0]) == [results[0]["id"]]


def test_get_of_an_unknown_id_is_none(store):
    assert store.get("missing") is None


def test_list_is_newest_first_then_by_id(store):
    for analysis_id, created_at in [
        ("b", "2026-11-24T10:00:00.000001Z"),
        ("a", "2026-11-24T10:00:00.000002Z"),
        ("c", "2026-11-24T10:00:00.000002Z"),
        ("d", "2026-11-23T23:59:59.999999Z"),
    ]:
        store.create(analysis(analysis_id, created_at))
    items, cursor = store.list(10)
    assert ids(items) == ["c", "a", "b", "d"] and cursor is None
    assert items[0] == analysis("c", "2026-11-24T10:00:00.000002Z")


def test_pages_cover_everything_once_while_others_insert(store):
    for i in range(7):
        store.create(analysis(f"old{i}", f"2026-11-24T10:00:0{i}.000000Z"))
    page, cursor = store.list(3)
    seen = ids(page)
    store.create(analysis("newer", "2026-11-24T12:00:00.000000Z"))  # lands before the cursor: not in later pages
    while cursor:
        page, cursor = store.list(3, cursor)
        seen += ids(page)
    assert seen == [f"old{i}" for i in reversed(range(7))]


def test_the_last_full_page_has_no_cursor(store):
    for i in range(4):
        store.create(analysis(f"a{i}", f"2026-11-24T10:00:0{i}.000000Z"))
    _, cursor = store.list(2)
    page, cursor = store.list(2, cursor)
    assert ids(page) == ["a1", "a0"] and cursor is None


def test_a_cursor_after_a_deleted_document_still_pages_on(store):
    for i in range(4):
        store.create(analysis(f"a{i}", f"2026-11-24T10:00:0{i}.000000Z"))
    page, cursor = store.list(2)
    store.delete(page[-1]["id"])
    assert ids(store.list(10, cursor)[0]) == ["a1", "a0"]


def test_a_cursor_that_is_not_ours_is_a_400(store):
    for cursor in ["not-a-cursor", encode_cursor({"created_at": "yesterday", "id": "a"})]:
        with pytest.raises(InvalidInput) as raised:
            store.list(10, cursor)
        assert raised.value.status == 400


def test_delete_once_then_not_found(store):
    store.create(analysis("a1", "2026-11-24T10:00:00.000000Z"))
    assert store.delete("a1") is True
    assert store.get("a1") is None
    assert store.delete("a1") is False


def test_each_owner_lists_gets_and_deletes_only_its_own(store):
    for i in range(5):
        store.create(analysis(f"a{i}", f"2026-11-24T10:00:0{i}.000000Z"))
        store.create(analysis(f"b{i}", f"2026-11-24T10:00:0{i}.500000Z", owner="bob"))
    seen, cursor = [], None
    while True:  # pages of two through alice's five, bob's in between never showing
        page, cursor = store.list(2, cursor, owner="alice")
        seen += ids(page)
        if cursor is None:
            break
    assert seen == ["a4", "a3", "a2", "a1", "a0"]
    assert ids(store.list(3, owner="bob")[0]) == ["b4", "b3", "b2"]
    assert ids(store.list(3)[0]) == ["b4", "a4", "b3"]  # no owner: everyone's, for administrators
    assert store.get("b1", owner="alice") is None and store.get("b1", owner="bob")["owner"] == "bob"
    assert store.delete("b1", owner="alice") is False
    assert store.get("b1") is not None
    assert store.delete("b1", owner="bob") is True and store.get("b1") is None


def study(study_id, created_at, owner="alice", study_uid="1.2.3", **extra):
    """A study document shaped like the service's, job state included."""
    return {
        "id": study_id,
        "owner": owner,
        "created_at": created_at,
        "status": "queued",
        "progress": {"done": 0, "total": 3},
        "study_uid": study_uid,
        "series_uid": "1.2.3.4",
        "slice_count": 3,
        "attempts": 0,
        "lease_owner": None,
        "lease_until": None,
        "slice_table": {"z": [-10.5, 0.0, 10.5], "sop_instance_uid": ["", "", ""], "instance_number": [3, 2, None]},
        **extra,
    }


def test_a_study_round_trips_exactly(store):
    doc = study("s1", "2026-12-06T10:00:00.123456Z")
    assert store.create_study(doc) == doc
    assert store.get_study("s1") == doc and store.get_study("s1", owner="bob") is None
    assert store.get("s1") is None  # studies and analyses are apart


def test_studies_list_newest_first_per_owner_and_dicom_study_with_a_cursor(store):
    for i in range(5):
        store.create_study(study(f"s{i}", f"2026-12-06T10:00:0{i}.000000Z", study_uid="1.2.3" if i % 2 else "9.9"))
    store.create_study(study("b0", "2026-12-06T10:00:09.000000Z", owner="bob"))
    seen, cursor = [], None
    while True:
        page, cursor = store.list_studies(2, cursor, owner="alice")
        seen += ids(page)
        if cursor is None:
            break
    assert seen == ["s4", "s3", "s2", "s1", "s0"]
    assert ids(store.list_studies(10, owner="alice", study_uid="1.2.3")[0]) == ["s3", "s1"]
    assert ids(store.list_studies(10, study_uid="1.2.3")[0]) == ["b0", "s3", "s1"]
    assert ids(store.list_studies(10)[0])[0] == "b0"


def test_a_conditional_update_lets_one_of_two_claims_win(store):
    store.create_study(study("s1", "2026-12-06T10:00:00.000000Z"))
    read = {"status": "queued", "lease_owner": None}

    def claim(worker):
        return store.update_study("s1", {"status": "running", "lease_owner": worker}, read)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(claim, ["w1", "w2", "w3", "w4"]))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    stored = store.get_study("s1")
    assert stored["lease_owner"] == winners[0]["lease_owner"] and stored["status"] == "running"
    assert stored["slice_table"] == study("s1", "")["slice_table"]  # fields not named are kept
    assert store.update_study("s1", {"status": "done"}, {"lease_owner": "someone else"}) is None
    assert store.update_study("s1", {"status": "done"}, {"lease_owner": stored["lease_owner"]})["status"] == "done"
    assert store.update_study("missing", {"status": "done"}) is None


# A worker's progress writes, forever: `python -c WRITER <store> <data folder or emulator host>`.
WRITER = f"""
import itertools, sys
kind, where = sys.argv[1:]
if kind == "sqlite":
    from backend.store.sqlite import SQLiteStore
    store = SQLiteStore(where)
else:
    from backend.store.firestore import FirestoreStore
    store = FirestoreStore({PROJECT!r}, timeout_s=10, emulator=where)
for n in itertools.count():
    store.update_study("s1", {{"progress": {{"done": n, "total": 3}}}})
"""


def test_a_writer_killed_mid_update_leaves_the_study_free(store):
    """A worker killed while it updates its study (an OOM kill, a lost machine) holds nothing: the next update lands
    at once. Firestore kept a dead writer's transaction lock until it had been idle for a minute."""
    store.create_study(study("s1", "2026-12-06T10:00:00.000000Z"))
    where = str(store.path.parent) if store.name == "sqlite" else os.environ["FIRESTORE_EMULATOR_HOST"]
    for _ in range(2):  # a kill lands inside an update almost every time; twice, to be sure
        writer = subprocess.Popen([sys.executable, "-c", WRITER, store.name, where], cwd=REPO)
        try:
            start = store.get_study("s1")["progress"]["done"]
            deadline = time.monotonic() + 60
            while store.get_study("s1")["progress"]["done"] < start + 10 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            writer.kill()
            writer.wait()
        started = time.monotonic()
        assert store.update_study("s1", {"status": "running"}, {"status": store.get_study("s1")["status"]})
        assert time.monotonic() - started < 5


def test_unfinished_studies_are_the_queued_running_and_still_sending_ones_oldest_first(store):
    for i, status in enumerate(["done", "running", "queued", "failed", "queued"]):
        store.create_study(study(f"s{i}", f"2026-12-06T10:00:0{i}.000000Z", status=status))
    for i, state in ((5, "pending"), (6, "sent"), (7, "failed")):  # done: results sent to a PACS, or on their way
        delivery = {"state": state, "to": "PACS@127.0.0.1:4242", "error": None}
        store.create_study(study(f"s{i}", f"2026-12-06T10:00:0{i}.000000Z", status="done", results_delivery=delivery))
    assert ids(store.unfinished_studies()) == ["s1", "s2", "s4", "s5"]


def test_deleting_a_study_once(store):
    store.create_study(study("s1", "2026-12-06T10:00:00.000000Z"))
    assert store.delete_study("s1", owner="bob") is False
    assert store.delete_study("s1", owner="alice") is True
    assert store.get_study("s1") is None and store.delete_study("s1") is False
