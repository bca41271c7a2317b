"""A study whose service process dies mid-study is never left `running`: the local queue resumes it on the next
start once its lease has expired, or marks it `failed` after STUDY_MAX_ATTEMPTS; SIGTERM hands it back at once.
Nor is a done study's delivery to the PACS left `pending` by a process that dies while sending it.
The real service process (python backend/app.py), killed for real."""

import json
import os
import signal
import time

import pytest

from backend.store.sqlite import SQLiteStore
from tests.fixtures.http import multipart, request
from tests.fixtures.series import make_zip, repositioned, series_bytes
from tests.fixtures.server import free_port, started_server

pytestmark = pytest.mark.slow

LEASE_S = 3


@pytest.fixture(scope="module")
def long_series_zip():
    """60 slices: two stacks of the real series, so that a study takes long enough to be killed half-way."""
    return make_zip(repositioned(series_bytes(), 2))


def env(tmp_path, **extra):
    return {
        "STORE": "sqlite",
        "DATA_DIR": str(tmp_path / "data"),
        "STUDY_LEASE_S": str(LEASE_S),
        "STUDY_BATCH_SIZE": "2",
        **{k: str(v) for k, v in extra.items()},
    }


def get(server, study_id) -> dict:
    status, _, body = request("GET", f"{server.base_url}/studies/{study_id}")
    assert status == 200
    return json.loads(body)


def start_study(server, zip_bytes) -> str:
    status, _, body = request("POST", server.base_url + "/studies", *multipart("file", "long.zip", zip_bytes))
    assert status == 202, body
    return json.loads(body)["id"]


def until(check, timeout_s=300, every_s=0.1):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every_s)


def stored(tmp_path, study_id) -> dict:
    store = SQLiteStore(tmp_path / "data")
    try:
        return store.get_study(study_id)
    finally:
        store.close()


def kill_mid_study(tmp_path, zip_bytes, **settings) -> str:
    with started_server(env(tmp_path, **settings)) as server:
        study_id = start_study(server, zip_bytes)
        until(lambda: 2 <= get(server, study_id)["progress"]["done"] < 40)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(30)
    assert stored(tmp_path, study_id)["status"] == "running"  # what the killed process left
    return study_id


def test_a_study_killed_mid_way_resumes_on_the_next_start(tmp_path, long_series_zip):
    study_id = kill_mid_study(tmp_path, long_series_zip)
    with started_server(env(tmp_path)) as server:
        done = until(lambda: (doc := get(server, study_id))["status"] in ("done", "failed") and doc)
        assert done["status"] == "done", done.get("error")
        assert done["slice_count"] == 60 and len(done["slices"]) == 60 and done["progress"]["done"] == 60
        assert stored(tmp_path, study_id)["attempts"] == 2
        status, _, _ = request("GET", f"{server.base_url}/studies/{study_id}/slices/59/heatmap.jpg")
        assert status == 200


def test_a_study_killed_more_often_than_allowed_is_failed_with_a_clear_error(tmp_path, long_series_zip):
    study_id = kill_mid_study(tmp_path, long_series_zip, STUDY_MAX_ATTEMPTS=1)
    with started_server(env(tmp_path, STUDY_MAX_ATTEMPTS=1)) as server:
        failed = until(lambda: (doc := get(server, study_id))["status"] != "running" and doc)
        assert failed["status"] == "failed"
        assert failed["error"]["error"] == "study_interrupted" and "stopped 1 times" in failed["error"]["message"]


def test_sigterm_hands_the_study_back_to_the_queue(tmp_path, long_series_zip):
    with started_server(env(tmp_path)) as server:
        study_id = start_study(server, long_series_zip)
        until(lambda: 2 <= get(server, study_id)["progress"]["done"] < 40)
        server.process.terminate()
        assert server.process.wait(60) == 0
    doc = stored(tmp_path, study_id)
    assert doc["status"] == "queued" and doc["lease_owner"] is None and doc["attempts"] == 0


def test_a_delivery_cut_off_by_a_killed_process_is_made_by_the_next_start(tmp_path):
    down = f"ORTHANC@127.0.0.1:{free_port()}"  # nothing listens there: each attempt is refused at once
    few = make_zip(dict(list(series_bytes().items())[12:16]))
    with started_server(env(tmp_path, DICOM_RESULTS_TO=down, DICOM_RESULTS_RETRY_S=4)) as server:
        study_id = start_study(server, few)
        until(lambda: (get(server, study_id).get("results_delivery") or {}).get("state") == "pending")
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(30)
    cut_off = stored(tmp_path, study_id)
    assert (cut_off["status"], cut_off["results_delivery"]["state"]) == ("done", "pending")
    with started_server(env(tmp_path, DICOM_RESULTS_TO=down, DICOM_RESULTS_RETRY_S=1)) as server:
        sent = until(lambda: (doc := get(server, study_id))["results_delivery"]["state"] != "pending" and doc, 60)
        delivery = sent["results_delivery"]
        assert delivery["state"] == "failed" and "gave up after 1 s" in delivery["error"]
        assert sent["status"] == "done" and sent["prediction"] == cut_off["prediction"]  # the answer as it was
    assert stored(tmp_path, study_id)["lease_owner"] is None
