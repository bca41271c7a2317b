"""GET /ready: 200 only while the model is loaded and the stores answer; 503 naming what is not (Firestore going
away: tests/test_firestore_faults.py)."""

from backend.app import create_app
from tests.fixtures.openapi import ResponseChecker


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
