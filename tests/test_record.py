"""Recording an analysis (backend.analysis.record), the one path every way in takes: objects, then the document,
and nothing left half-done when either write fails or an identical request with the same key got there first.
The stores are the real embedded ones (SQLite, local files), made to fail the way real stores do."""

import sqlite3
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from backend.analysis import document
from backend.analysis.pipeline import analyze_slice
from backend.analysis.record import Stores, record_slice
from backend.errors import ImageStoreUnavailable
from backend.images.local import LocalImageStore
from backend.store.base import IdempotencyKey
from backend.store.sqlite import SQLiteStore
from tests.fixtures.data import dicom_file

FUTURE = datetime.now(UTC) + timedelta(days=1)


@pytest.fixture(scope="module")
def original():
    return dicom_file("693_UNCR.dcm").read_bytes()


@pytest.fixture(scope="module")
def result(classifier, original):
    return analyze_slice(original, classifier)


@pytest.fixture
def stores(tmp_path):
    stores = Stores(SQLiteStore(tmp_path), LocalImageStore(tmp_path), "analyses", 256 * 1024)
    yield stores
    stores.documents.close()


def fields(result, classifier):
    return document.new_fields(uuid.uuid4().hex, "local", "693_UNCR.dcm", "0" * 64, result, classifier)


def kept_objects(stores) -> list[str]:
    return stores.images.list_older_than("analyses/", FUTURE)


def test_objects_first_then_the_document_that_lists_them(stores, result, classifier, original):
    body, replayed = record_slice(stores, fields(result, classifier), result, original)
    stored = stores.documents.get(body["id"])
    assert not replayed and stored["images"] == body["images"]
    assert sorted(entry["path"] for entry in stored["images"]) == kept_objects(stores)
    assert stores.images.get(f"analyses/local/{body['id']}/original") == original
    assert "file_url" in body and "file_url" not in stored  # the 400 px image only in the answer


def test_an_object_that_cannot_be_written_leaves_no_object_and_no_document(stores, result, classifier, original):
    new = fields(result, classifier)
    stores.images.root.rmdir()
    stores.images.root.write_text("a file where the image store's folder should be")
    with pytest.raises(ImageStoreUnavailable):
        record_slice(stores, new, result, original)
    assert stores.documents.get(new["id"]) is None
    assert stores.images.root.read_text() == "a file where the image store's folder should be"


def test_a_document_that_cannot_be_written_takes_its_objects_back(stores, result, classifier, original):
    first, _ = record_slice(stores, fields(result, classifier), result, original)
    # Another owner's analysis under the same id: its objects go to its own folder, the document store refuses the row
    clash = {**fields(result, classifier), "id": first["id"], "owner": "someone"}
    before = kept_objects(stores)
    with pytest.raises(sqlite3.IntegrityError):
        record_slice(stores, clash, result, original)
    assert kept_objects(stores) == before  # the refused write's objects are gone, the first's stay


def test_the_losers_of_an_idempotency_race_remove_their_objects(stores, result, classifier, original):
    """Three identical requests with one key at once: one analysis stored, with its objects only."""
    key = IdempotencyKey("local", "upload-1", "the same request")
    start = threading.Barrier(3)

    def one():
        start.wait()
        return record_slice(stores, fields(result, classifier), result, original, key)

    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: one(), range(3)))
    assert sorted(replayed for _, replayed in answers) == [False, True, True]
    stored = stores.documents.get(answers[0][0]["id"])
    assert {body["id"] for body, _ in answers} == {stored["id"]}
    assert kept_objects(stores) == sorted(entry["path"] for entry in stored["images"])


def test_without_an_image_store_only_the_document_is_written(tmp_path, result, classifier, original):
    stores = Stores(SQLiteStore(tmp_path), None, "analyses", 256 * 1024)
    body, _ = record_slice(stores, fields(result, classifier), result, original)
    assert "images" not in stores.documents.get(body["id"])
    stores.documents.close()
