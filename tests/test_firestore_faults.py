"""Firestore going away and coming back: bounded 503s meanwhile, /ready saying so, working again after, no
restart. This module's tests share one private emulator, which they stop and start."""

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from backend.app import create_app
from backend.errors import StoreUnavailable
from backend.store.firestore import FirestoreStore
from tests.fixtures.data import dicom_file
from tests.fixtures.firestore_emulator import PROJECT
from tests.fixtures.http import multipart, request
from tests.fixtures.metrics import samples, value
from tests.fixtures.openapi import ResponseChecker
from tests.fixtures.server import running_server

pytestmark = pytest.mark.firestore

TIMEOUT_S = 2  # each refused call waits this long (a test's calls are made at once, as a busy service's are)
BOUND_S = 10  # a request never waits much past STORE_TIMEOUT_S
RECOVERY_S = 60  # gRPC reconnects with backoff; a short outage is over well within this


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def at_once(calls) -> list:
    """Each call's (result, seconds), the calls made together from threads."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(timed, calls))


def eventually(call, within_s=RECOVERY_S):
    deadline = time.monotonic() + within_s
    while True:
        try:
            return call()
        except (StoreUnavailable, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture
def emulator(own_firestore_emulator, monkeypatch):
    for name, setting in own_firestore_emulator.env().items():
        monkeypatch.setenv(name, setting)
    return own_firestore_emulator


def test_the_store_fails_fast_while_firestore_is_down_and_recovers_without_restart(emulator):
    store = FirestoreStore(PROJECT, timeout_s=TIMEOUT_S, emulator=os.environ["FIRESTORE_EMULATOR_HOST"])
    try:
        store.create({"id": "before", "created_at": "2026-11-24T10:00:00.000000Z"})
        emulator.stop()
        operations = [
            lambda: store.get("before"),
            lambda: store.list(10),
            lambda: store.delete("before"),
            lambda: store.create({"id": "during", "created_at": "2026-11-24T10:00:01.000000Z"}),
        ]
        for (outcome, seconds), operation in zip(
            at_once([refused(call) for call in operations]), operations, strict=True
        ):
            assert isinstance(outcome, StoreUnavailable), (operation, outcome)
            assert seconds < BOUND_S

        emulator.start()  # same port, empty: the emulator keeps nothing across restarts
        eventually(lambda: store.list(10))
        store.create({"id": "after", "created_at": "2026-11-24T10:00:02.000000Z"})
        assert [item["id"] for item in store.list(10)[0]] == ["after"]
    finally:
        store.close()


def test_the_service_answers_503_within_the_bound_then_works_again(emulator, tmp_path):
    upload, headers = multipart("file", "693_UNCR.dcm", dicom_file("693_UNCR.dcm").read_bytes())
    retried_upload = {**headers, "Idempotency-Key": "outage-upload-1"}
    env = {
        "STORE": "firestore",
        "STORE_TIMEOUT_S": str(TIMEOUT_S),
        "DATA_DIR": str(tmp_path / "data"),
        **emulator.env(),
    }
    with running_server(env) as base_url:
        assert request("GET", base_url + "/analyses")[0] == 200
        emulator.stop()

        calls = [
            ("GET", "/analyses", None, {}),
            ("GET", "/analyses/x", None, {}),
            ("DELETE", "/analyses/x", None, {}),
            ("POST", "/analyze", upload, retried_upload),
        ]
        answers = at_once([lambda c=call: request(c[0], base_url + c[1], c[2], c[3]) for call in calls])
        for ((status, _, raw), seconds), (method, path, *_) in zip(answers, calls, strict=True):
            assert (status, json.loads(raw)["error"]) == (503, "store_unavailable"), (method, path)
            assert seconds < BOUND_S, (method, path, seconds)

        emulator.start()
        eventually(lambda: _assert_status(request("GET", base_url + "/analyses"), 200))
        status, _, raw = request("POST", base_url + "/analyze", upload, retried_upload)
        assert status == 201
        status, _, listing = request("GET", base_url + "/analyses")
        assert [item["id"] for item in json.loads(listing)["items"]] == [json.loads(raw)["id"]]


def refused(call):
    """`call`, returning the StoreUnavailable it raises instead of raising it."""

    def returning_the_error():
        try:
            return call()
        except StoreUnavailable as error:
            return error

    return returning_the_error


def _assert_status(response, expected):
    assert response[0] == expected, response


def store_errors(client) -> float:
    return value(samples(client.get("/metrics").get_data(as_text=True)), "store_errors_total", store="firestore")


def ready_within(client, seconds) -> bool:
    deadline = time.monotonic() + seconds
    while (status := client.get("/ready").status_code) != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    return status == 200


def test_ready_follows_firestore_going_away_and_coming_back(emulator):
    app = create_app({"STORE": "firestore", "GOOGLE_CLOUD_PROJECT": PROJECT, "STORE_TIMEOUT_S": 3})
    client = app.test_client()
    try:
        assert client.get("/ready").status_code == 200  # the fixture's emulator has served a write: warm

        emulator.stop()
        started = time.monotonic()
        response = client.get("/ready")
        assert time.monotonic() - started < 5  # a probe answers fast, not after the store's retries
        assert response.status_code == 503
        body = response.get_json()
        assert body["error"] == "not_ready" and set(body["not_ready"]) == {"store"}
        assert "firestore" in body["message"]
        ResponseChecker(app, client.get("/openapi.json").get_json()).check(response, "GET", "/ready")
        assert client.get("/health").status_code == 200  # still alive: no restart wanted
        errors_before = store_errors(client)
        assert client.get("/analyses").status_code == 503
        assert store_errors(client) == errors_before + 1

        emulator.start()  # same port
        assert ready_within(client, RECOVERY_S)
    finally:
        app.extensions["study_queue"].close()  # its scan of the store would go on after the test, logging failures
        app.extensions["store"].close()
