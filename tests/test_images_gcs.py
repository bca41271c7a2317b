"""IMAGE_STORE=gcs end to end: Cloud Storage (fake-gcs-server) for objects, Firestore (the official
emulator) for documents; either going away gives 503s that leave nothing half-done, and coming
back needs no restart of the service."""
import base64
import io
import time
from datetime import datetime, timedelta, timezone

import pytest

from backend.app import create_app
from backend.images import get_image_store
from tests.fixtures.data import covid_ct_image, dicom_file

pytestmark = [pytest.mark.gcs, pytest.mark.firestore]

TIMEOUT_S = 2
BOUND_S = 8  # a request never waits much past STORE_TIMEOUT_S
FUTURE = datetime.now(timezone.utc) + timedelta(days=1)


def service(tmp_path, bucket):
    return create_app({"STORE": "firestore", "IMAGE_STORE": "gcs", "STORAGE_BUCKET": bucket, "TESTING": True,
                       "DATA_DIR": str(tmp_path / "data"), "STORE_TIMEOUT_S": TIMEOUT_S})


def objects_in(app) -> list[str]:
    with app.app_context():
        return get_image_store().list_older_than("analyses/", FUTURE)


def post(client, data, name):
    return client.post("/analyze", data={"file": (io.BytesIO(data), name)})


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_objects_live_in_the_bucket_and_go_with_the_analysis(tmp_path, firestore_env, gcs_bucket):
    app = service(tmp_path, gcs_bucket)
    client = app.test_client()
    dicom = dicom_file("693_UNCR.dcm").read_bytes()
    body = post(client, dicom, "693_UNCR.dcm").get_json()
    prefix = f"analyses/local/{body['id']}/"
    assert objects_in(app) == [prefix + "heatmap.jpg", prefix + "original", prefix + "slice.jpg"]
    slice_jpg = client.get(f"/analyses/{body['id']}/images/slice.jpg")
    assert slice_jpg.data == base64.b64decode(body["file_url"].partition(",")[2])
    original = client.get(f"/analyses/{body['id']}/images/original")
    assert original.data == dicom and original.mimetype == "application/dicom"
    assert client.get(f"/analyses/{body['id']}").get_json()["images"] == body["images"]

    again = client.post(f"/analyses/{body['id']}/reanalyze").get_json()
    assert again["reanalysis_of"] == body["id"] and len(objects_in(app)) == 6
    assert client.delete(f"/analyses/{body['id']}").status_code == 204
    assert objects_in(app) == sorted(entry["path"] for entry in again["images"])


def test_cloud_storage_down_gives_503s_that_change_nothing_and_up_again_works(tmp_path, firestore_env,
                                                                               own_gcs_emulator, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", own_gcs_emulator.url)
    app = service(tmp_path, own_gcs_emulator.new_bucket())
    client = app.test_client()
    png = covid_ct_image("COVID", 0).read_bytes()
    kept = post(client, png, "kept.png").get_json()

    own_gcs_emulator.stop()
    ready, took = timed(lambda: client.get("/ready"))
    assert ready.status_code == 503 and set(ready.get_json()["not_ready"]) == {"image_store"} and took < 5
    response, took = timed(lambda: post(client, covid_ct_image("NonCOVID", 0).read_bytes(), "during.png"))
    assert response.status_code == 503 and response.get_json()["error"] == "image_store_unavailable"
    assert took < BOUND_S
    assert [item["id"] for item in client.get("/analyses").get_json()["items"]] == [kept["id"]]
    response, took = timed(lambda: client.delete(f"/analyses/{kept['id']}"))
    assert response.status_code == 503 and took < BOUND_S
    assert client.get(f"/analyses/{kept['id']}").status_code == 200  # reload still works: thumbnails in Firestore
    assert client.get(f"/analyses/{kept['id']}/images/slice.jpg").status_code == 503

    own_gcs_emulator.start()  # same port, same objects on disk
    assert client.get("/ready").status_code == 200
    assert client.get(f"/analyses/{kept['id']}/images/original").data == png
    assert post(client, png, "after.png").status_code == 201
    assert client.delete(f"/analyses/{kept['id']}").status_code == 204  # the retry finishes
    assert client.get(f"/analyses/{kept['id']}").status_code == 404
    assert not any(path.startswith(f"analyses/local/{kept['id']}/") for path in objects_in(app))
