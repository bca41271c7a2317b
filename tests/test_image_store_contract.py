"""The object store contract, run against both backends: local files and Cloud Storage (fake-gcs-server)."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from backend.analysis.objects import EVERYTHING
from backend.images.gcs import GcsImageStore
from backend.images.local import LocalImageStore
from tests.fixtures.gcs_emulator import PROJECT

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40  # bytes as they are, whatever they hold


@pytest.fixture(params=["local", pytest.param("gcs", marks=pytest.mark.gcs)])
def store(request, tmp_path):
    if request.param == "local":
        store = LocalImageStore(tmp_path / "data")
    else:
        store = GcsImageStore(
            request.getfixturevalue("gcs_bucket"), PROJECT, timeout_s=5, emulator=os.environ["STORAGE_EMULATOR_HOST"]
        )
    yield store
    store.close()


def test_put_then_get_returns_the_bytes_exactly(store):
    assert store.put("analyses/alice/a1/slice.jpg", JPEG, "image/jpeg") is True
    assert store.get("analyses/alice/a1/slice.jpg") == JPEG


def test_put_creates_only_if_absent(store):
    assert store.put("analyses/alice/a1/original", b"first", "image/png") is True
    assert store.put("analyses/alice/a1/original", b"second", "image/png") is False
    assert store.get("analyses/alice/a1/original") == b"first"


def test_racing_puts_to_one_path_write_once(store):
    with ThreadPoolExecutor(4) as pool:
        written = list(
            pool.map(lambda i: store.put("analyses/alice/a1/heatmap.jpg", bytes([i]) * 1000, "image/jpeg"), range(4))
        )
    assert written.count(True) == 1
    assert store.get("analyses/alice/a1/heatmap.jpg") == bytes([written.index(True)]) * 1000


def test_get_of_a_missing_object_is_none(store):
    assert store.get("analyses/alice/nothing/slice.jpg") is None


def test_delete_removes_and_a_missing_object_is_fine(store):
    store.put("analyses/alice/a1/slice.jpg", JPEG, "image/jpeg")
    store.delete("analyses/alice/a1/slice.jpg")
    assert store.get("analyses/alice/a1/slice.jpg") is None
    store.delete("analyses/alice/a1/slice.jpg")
    assert store.put("analyses/alice/a1/slice.jpg", b"again", "image/jpeg") is True


def test_list_older_than_names_objects_under_the_prefix_created_before_the_cutoff(store):
    store.put("analyses/alice/a1/slice.jpg", JPEG, "image/jpeg")
    store.put("analyses/bob/b1/original", b"x", "application/dicom")
    now = datetime.now(UTC)
    assert store.list_older_than("analyses/", now + timedelta(minutes=1)) == [
        "analyses/alice/a1/slice.jpg",
        "analyses/bob/b1/original",
    ]
    assert store.list_older_than("analyses/", now - timedelta(minutes=1)) == []


def test_listing_while_another_worker_removes_objects_under_the_prefix_names_what_stays(store):
    """A user deletes a study (its objects are listed, then removed) while its worker removes the batch it had just
    written: folders vanish during the listing. The listing goes on and names every object that stays."""
    store.put("studies/alice/kept/series.dcm", b"kept", "application/dicom")
    stop = threading.Event()

    def worker():
        while not stop.is_set():
            paths = [f"studies/alice/gone/slices/{i}/{name}.jpg" for i in range(8) for name in ("slice", "heatmap")]
            for path in paths:
                store.put(path, JPEG, "image/jpeg")
            for path in paths:
                store.delete(path)

    with ThreadPoolExecutor(1) as pool:
        writing = pool.submit(worker)
        try:
            for _ in range(200 if store.name == "local" else 20):
                assert "studies/alice/kept/series.dcm" in store.list_older_than("studies/", EVERYTHING)
        finally:
            stop.set()
        writing.result()
