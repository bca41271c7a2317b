"""Firestore going away and coming back: bounded 503s meanwhile, working again after, no restart."""

import json
import os
import time

import pytest

from backend.errors import StoreUnavailable
from backend.store.firestore import FirestoreStore
from tests.fixtures.data import dicom_file
from tests.fixtures.firestore_emulator import PROJECT
from tests.fixtures.http import multipart, request
from tests.fixtures.server import running_server

pytestmark = pytest.mark.firestore

TIMEOUT_S = 2  # each refused call waits this long: 8 of them
BOUND_S = 10  # a request never waits much past STORE_TIMEOUT_S
RECOVERY_S = 60  # gRPC reconnects with backoff; a short outage is over well within this


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


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
    for name, value in own_firestore_emulator.env().items():
        monkeypatch.setenv(name, value)
    return own_firestore_emulator


def test_the_store_fails_fast_while_firestore_is_down_and_recovers_without_restart(emulator):
    store = FirestoreStore(PROJECT, timeout_s=TIMEOUT_S, emulator=os.environ["FIRESTORE_EMULATOR_HOST"])
    try:
        store.create({"id": "before", "created_at": "2026-11-24T10:00:00.000000Z"})
        emulator.stop()
        for operation in (
            lambda: store.get("before"),
            lambda: store.list(10),
            lambda: store.delete("before"),
            lambda: store.create({"id": "during", "created_at": "2026-11-24T10:00:01.000000Z"}),
        ):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                operation()
            assert time.monotonic() - started < BOUND_S

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

        for method, path, body, request_headers in [
            ("GET", "/analyses", None, {}),
            ("GET", "/analyses/x", None, {}),
            ("DELETE", "/analyses/x", None, {}),
            ("POST", "/analyze", upload, retried_upload),
        ]:
            (status, _, raw), seconds = timed(
                lambda m=method, p=path, b=body, h=request_headers: request(m, base_url + p, b, h)
            )
            assert (status, json.loads(raw)["error"]) == (503, "store_unavailable"), (method, path)
            assert seconds < BOUND_S, (method, path, seconds)

        emulator.start()
        eventually(lambda: _assert_status(request("GET", base_url + "/analyses"), 200))
        status, _, raw = request("POST", base_url + "/analyze", upload, retried_upload)
        assert status == 201
        status, _, listing = request("GET", base_url + "/analyses")
        assert [item["id"] for item in json.loads(listing)["items"]] == [json.loads(raw)["id"]]


def _assert_status(response, expected):
    assert response[0] == expected, response
