"""GET /ready: 200 only while the model is loaded and the stores answer; 503 naming what is not."""

import time

import pytest

from backend.app import create_app
from tests.fixtures.firestore_emulator import PROJECT
from tests.fixtures.metrics import samples, value
from tests.fixtures.openapi import ResponseChecker

RECOVERY_S = 60  # gRPC reconnects with backoff after an outage


def store_errors(client) -> float:
    return value(samples(client.get("/metrics").get_data(as_text=True)), "store_errors_total", store="firestore")


def ready_within(client, seconds) -> bool:
    deadline = time.monotonic() + seconds
    while (status := client.get("/ready").status_code) != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    return status == 200


def test_ready_with_the_embedded_stores(client):
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"model": "ok", "store": "ok", "image_store": "ok"}}


def test_ready_names_an_image_folder_it_cannot_write_to(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path), "TESTING": True})
    client = app.test_client()
    images = tmp_path / "images"
    images.rmdir()
    images.write_text("a file where the images folder should be")
    response = client.get("/ready")
    assert response.status_code == 503 and set(response.get_json()["not_ready"]) == {"image_store"}
    ResponseChecker(app, client.get("/openapi.json").get_json()).check(response, "GET", "/ready")
    images.unlink()
    images.mkdir()
    assert client.get("/ready").status_code == 200


@pytest.mark.firestore
def test_ready_follows_firestore_going_away_and_coming_back(own_firestore_emulator, monkeypatch):
    for name, setting in own_firestore_emulator.env().items():
        monkeypatch.setenv(name, setting)
    app = create_app({"STORE": "firestore", "GOOGLE_CLOUD_PROJECT": PROJECT, "STORE_TIMEOUT_S": 3})
    client = app.test_client()
    try:
        # A just-started emulator may miss the probe's 2 s on a busy machine (seen once under load): wait until ready.
        assert ready_within(client, RECOVERY_S)

        own_firestore_emulator.stop()
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

        own_firestore_emulator.start()  # same port
        assert ready_within(client, RECOVERY_S)
    finally:
        app.extensions["study_queue"].close()  # its scan of the store would go on after the test, logging failures
        app.extensions["store"].close()
