"""Two instances against one Firestore are one service: no instance keeps state of its own."""

import json
import threading

import pytest
from google.cloud import firestore

from tests.fixtures.data import dicom_file
from tests.fixtures.firestore_emulator import PROJECT
from tests.fixtures.http import multipart, request
from tests.fixtures.server import GUNICORN, started_server

pytestmark = pytest.mark.firestore


@pytest.fixture(scope="module")
def started_instances(firestore_emulator, tmp_path_factory):
    """Two gunicorn instances (one worker each) on different ports, both on the shared emulator."""
    tmp_path = tmp_path_factory.mktemp("instances")
    env = {"STORE": "firestore", "WEB_CONCURRENCY": "1", "THREADS": "2", **firestore_emulator.env()}
    with (
        started_server(
            {**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "a")},
            argv=GUNICORN,
            log_path=tmp_path / "a.log",
            timeout_s=120,
        ) as a,
        started_server(
            {**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "b")},
            argv=GUNICORN,
            log_path=tmp_path / "b.log",
            timeout_s=120,
        ) as b,
    ):
        yield a.base_url, b.base_url


@pytest.fixture
def instances(started_instances, firestore_emulator):
    firestore_emulator.clear()
    return started_instances


def test_one_idempotent_upload_sent_to_both_at_once_gives_one_analysis(instances, firestore_env):
    body, headers = multipart("file", "slice.dcm", dicom_file("693_UNCR.dcm").read_bytes())
    headers["Idempotency-Key"] = "scale-out-1"
    answers, start = {}, threading.Barrier(len(instances))

    def upload(base_url):
        start.wait()
        answers[base_url] = request("POST", base_url + "/analyze", body, headers)

    threads = [threading.Thread(target=upload, args=(url,)) for url in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _, _ in answers.values()] == [201, 201]
    documents = [json.loads(raw) for _, _, raw in answers.values()]
    assert documents[0]["id"] == documents[1]["id"]
    assert documents[0]["created_at"] == documents[1]["created_at"]  # the first write, as both report it

    client = firestore.Client(project=PROJECT)  # firestore_env points it at the emulator
    try:
        assert [s.id for s in client.collection("analyses").stream()] == [documents[0]["id"]]
    finally:
        client.close()


def test_what_one_instance_stores_the_other_serves_and_deletes(instances):
    a, b = instances
    body, headers = multipart("file", "slice.dcm", dicom_file("693_UNCR.dcm").read_bytes())
    status, _, raw = request("POST", a + "/analyze", body, headers)
    assert status == 201
    created = json.loads(raw)
    status, _, raw = request("GET", f"{b}/analyses/{created['id']}")
    assert status == 200 and json.loads(raw)["sha256"] == created["sha256"]
    assert [item["id"] for item in json.loads(request("GET", b + "/analyses")[2])["items"]] == [created["id"]]
    assert request("DELETE", f"{b}/analyses/{created['id']}")[0] == 204
    assert request("GET", f"{a}/analyses/{created['id']}")[0] == 404
