"""STUDY_QUEUE=pubsub on the official Pub/Sub emulator: the service publishes studies, two `python -m backend
worker` processes run them, with the studies' documents in Firestore (its emulator). A worker killed mid-study
loses nothing: Pub/Sub redelivers the study and the other worker resumes it; a study delivered again after it is
done is acknowledged and skipped, never analysed into a second result."""

import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pydicom
import pytest

from backend.store.firestore import FirestoreStore
from tests.fixtures.data import REPO
from tests.fixtures.firestore_emulator import PROJECT as FIRESTORE_PROJECT
from tests.fixtures.http import multipart, request
from tests.fixtures.series import make_zip, repositioned, series_bytes
from tests.fixtures.server import free_port, started_server

pytestmark = [pytest.mark.slow, pytest.mark.pubsub, pytest.mark.firestore]


def until(check, timeout_s=300, every_s=0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every_s)


def queue_env(tmp_path, pubsub_emulator, firestore_env, **settings) -> dict:
    """The settings of the service and its workers: studies through Pub/Sub, documents in a fresh Firestore
    collection, both emulators; `settings` added."""
    return {
        **pubsub_emulator.env(),
        **firestore_env.env(),
        "STORE": "firestore",
        "FIRESTORE_COLLECTION": f"t{uuid.uuid4().hex[:8]}",
        "DATA_DIR": str(tmp_path / "data"),
        "STUDY_QUEUE": "pubsub",
        "PUBSUB_ACK_DEADLINE_S": "10",
        "TORCH_THREADS": "1",
        **settings,
    }


def started_worker(env: dict, log) -> subprocess.Popen:
    """`python -m backend worker` with the settings `env`, its output to the file `log`."""
    with open(log, "w") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "backend", "worker"],
            env={**os.environ, **env},
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def post(server, name, data) -> str:
    status, headers, body = request("POST", server.base_url + "/studies", *multipart("file", name, data))
    assert status == 202, body
    return json.loads(body)["id"]


def get(server, study_id) -> dict:
    return json.loads(request("GET", f"{server.base_url}/studies/{study_id}")[2])


def test_two_workers_run_the_studies_and_a_killed_workers_study_is_resumed_once(
    tmp_path, pubsub_emulator, firestore_env, monkeypatch
):
    env = queue_env(tmp_path, pubsub_emulator, firestore_env, STUDY_LEASE_S="3", STUDY_BATCH_SIZE="2")
    collection = env["FIRESTORE_COLLECTION"]
    real = series_bytes()  # before any worker starts: without the data it skips here, leaving no process behind
    logs = [tmp_path / f"worker{n}.log" for n in range(2)]
    workers = [started_worker(env, log) for log in logs]
    store = FirestoreStore(FIRESTORE_PROJECT, collection=collection, emulator=firestore_env.host)
    try:
        with started_server(env) as server:
            long_id = post(server, "long.zip", make_zip(repositioned(real, 2)))
            short_id = post(server, "a0002.zip", make_zip(real))
            running = until(
                lambda: (doc := get(server, long_id))["status"] == "running" and doc["progress"]["done"] >= 2 and doc,
                every_s=0.1,
            )
            assert running["progress"]["done"] < 60
            store_doc = until(lambda: store.get_study(long_id))
            holder = next(w for w in workers if f":{w.pid}:" in store_doc["lease_owner"])
            holder.send_signal(signal.SIGKILL)
            holder.wait(30)

            done = {
                sid: until(lambda sid=sid: (doc := get(server, sid))["status"] in ("done", "failed") and doc)
                for sid in (long_id, short_id)
            }
            assert [d["status"] for d in done.values()] == ["done", "done"], [d.get("error") for d in done.values()]
            assert len(done[long_id]["slices"]) == 60 and done[short_id]["slice_count"] == 30
            assert store.get_study(long_id)["attempts"] == 2 and store.get_study(short_id)["attempts"] == 1
            for sid in (long_id, short_id):  # the workers wrote each study's answer as DICOM too, served by the API
                status, _, sr = request("GET", f"{server.base_url}/studies/{sid}/dicom/sr.dcm")
                assert status == 200
                assert pydicom.dcmread(io.BytesIO(sr)).SOPInstanceUID == done[sid]["dicom_results"]["sr"]

            # The same study delivered again: acknowledged, skipped, its result untouched.
            from google.cloud import pubsub_v1

            monkeypatch.setenv("PUBSUB_EMULATOR_HOST", env["PUBSUB_EMULATOR_HOST"])
            publisher = pubsub_v1.PublisherClient()
            topic = f"projects/{env['PUBSUB_PROJECT']}/topics/{env['PUBSUB_TOPIC']}"
            publisher.publish(topic, json.dumps({"study_id": long_id}).encode()).result(30)
            survivor_log = logs[workers.index(next(w for w in workers if w is not holder))]
            until(lambda: f"study {long_id}: skipped" in survivor_log.read_text(), timeout_s=60)
            assert (
                store.get_study(long_id) == store.get_study(long_id)
                and store.get_study(long_id)["finished_at"] == done[long_id]["finished_at"]
            )
            assert get(server, long_id)["prediction"] == done[long_id]["prediction"]
    finally:
        store.close()
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                worker.wait(60)


def test_a_pacs_that_is_down_holds_no_worker_and_its_deliveries_end_failed(tmp_path, pubsub_emulator, firestore_env):
    """One worker, results to a PACS that is down: the second study is analysed while the first one's results wait
    for their next attempt (its message unacknowledged, redelivered when the wait is over), and each delivery ends
    failed once DICOM_RESULTS_RETRY_S is spent, rather than pending for ever behind an acknowledged message."""
    env = queue_env(
        tmp_path,
        pubsub_emulator,
        firestore_env,
        DICOM_RESULTS_TO=f"PACS@127.0.0.1:{free_port()}",  # nothing listens there
        DICOM_RESULTS_RETRY_S="8",  # the first attempt, and one after a redelivery (at least 10 s later)
    )
    few = make_zip(dict(list(series_bytes().items())[12:16]))  # before the worker starts, as above
    worker = started_worker(env, tmp_path / "worker.log")
    try:
        with started_server(env) as server:
            first, second = post(server, "first.zip", few), post(server, "second.zip", few)
            until(lambda: get(server, second)["status"] == "done", timeout_s=120)
            waiting = get(server, first)["results_delivery"]
            assert waiting["state"] == "pending" and waiting["attempts"] >= 1
            for study_id in (first, second):
                delivery = until(
                    lambda sid=study_id: (d := get(server, sid)["results_delivery"])["state"] != "pending" and d, 120
                )
                assert delivery["state"] == "failed" and "gave up after 8 s" in delivery["error"]
                assert delivery["attempts"] >= 2  # the first, and one at least after a redelivery
    finally:
        worker.terminate()
        worker.wait(60)
