"""A study's answer as DICOM, in one service app: when a study finishes, its SR and key images are written, kept
and served (GET /studies/<id>/dicom/sr.dcm and key-images.zip), and sent to DICOM_RESULTS_TO. Here that PACS is
down: the delivery is failed with its reason, and the study is intact. (With a real Orthanc: test_dicom_e2e.py.)"""
import io
import time
import zipfile

import pydicom
import pytest

from backend.app import create_app
from tests.fixtures.dicom_study import check_results
from tests.fixtures.series import files_form, series_bytes
from tests.fixtures.server import free_port


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    down = f"ORTHANC@127.0.0.1:{free_port()}"  # nothing listens there
    return create_app({"DATA_DIR": str(tmp_path_factory.mktemp("dicom-studies") / "data"), "TESTING": True,
                       "RATE_LIMIT": "1000/minute", "DICOM_RESULTS_TO": down, "DICOM_RESULTS_RETRY_S": 1})


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def slices():
    real = series_bytes()
    return {name: real[name] for name in list(real)[10:16]}


def wait(client, study_id, until=("done", "failed"), timeout_s=300) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        doc = client.get(f"/studies/{study_id}").get_json()
        delivery = doc.get("results_delivery") or {}
        if doc["status"] in until and delivery.get("state") != "pending" or time.monotonic() > deadline:
            return doc
        time.sleep(0.2)


@pytest.fixture(scope="module")
def study(client, slices):
    response = client.post("/studies", data=files_form(slices))
    assert response.status_code == 202, response.get_json()
    return wait(client, response.get_json()["id"])


def test_a_pacs_that_is_down_leaves_a_failed_delivery_and_the_study_intact(study):
    assert study["status"] == "done" and 0 <= study["prediction"]["score"] <= 1
    delivery = study["results_delivery"]
    assert delivery["state"] == "failed" and delivery["to"].startswith("ORTHANC@127.0.0.1:")
    assert "gave up after 1 s" in delivery["error"]
    assert len(study["slices"]) == 6 and study["key_slices"]


def test_the_sr_and_key_images_are_served_to_the_owner(client, study, slices):
    uids = {pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID for data in slices.values()}
    sr = client.get(f"/studies/{study['id']}/dicom/sr.dcm")
    assert sr.status_code == 200 and sr.mimetype == "application/dicom"
    archive = client.get(f"/studies/{study['id']}/dicom/key-images.zip")
    assert archive.status_code == 200 and archive.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.data)) as opened:
        images = [opened.read(name) for name in opened.namelist()]
    assert len(images) == len(study["key_slices"])
    check_results(study, [sr.data, *images], uids)
    assert client.get(f"/studies/{study['id']}/dicom/other.dcm").status_code == 404
    assert client.get("/studies/unknown/dicom/sr.dcm").status_code == 404
