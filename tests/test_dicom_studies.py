"""DICOM and studies in one service app (with a real Orthanc: test_dicom_e2e.py).

When a study finishes, its SR and key images are written, kept and served (GET /studies/<id>/dicom/sr.dcm and
key-images.zip), and sent to DICOM_RESULTS_TO. Here that PACS is down: the delivery is failed with its reason,
and the study is intact. With accounts (AUTH_MODE=firebase), a series received by C-STORE becomes a study of
DICOM_OWNER, once for the same set of instances, and STOW-RS asks for a token like every API call."""

import io
import logging
import os
import time
import zipfile
from datetime import datetime
from pathlib import Path

import pydicom
import pytest

from backend.analysis.objects import EVERYTHING
from backend.app import create_app, start_dicom
from backend.dicom.dicomweb import multipart
from tests.fixtures.dicom_peer import c_store, listening
from tests.fixtures.dicom_study import check_results
from tests.fixtures.series import files_form, series_bytes
from tests.fixtures.server import free_port


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """No accounts (studies are `local`'s), with a DICOM listener; results go to a PACS that is down."""
    down = f"ORTHANC@127.0.0.1:{free_port()}"  # nothing listens there
    app = create_app(
        {
            "DATA_DIR": str(tmp_path_factory.mktemp("dicom-studies") / "data"),
            "TESTING": True,
            "RATE_LIMIT": "1000/minute",
            "DICOM_RESULTS_TO": down,
            "DICOM_RESULTS_RETRY_S": 1,
            **listening(),
        }
    )
    listener = start_dicom(app)
    yield app
    listener.stop()
    app.extensions["study_queue"].close()  # a delivery waiting for its next attempt would run after the module


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


def test_a_pacs_that_is_down_holds_no_worker_between_attempts(tmp_path, slices):
    """One study worker, and a PACS down for the whole retry window: the next study is analysed while the first's
    results wait for their next attempt (each attempt takes the worker, the waits between them do not)."""
    app = create_app(
        {
            "DATA_DIR": str(tmp_path / "data"),
            "TESTING": True,
            "STUDY_WORKERS": 1,
            "DICOM_RESULTS_TO": f"ORTHANC@127.0.0.1:{free_port()}",  # nothing listens there
            "DICOM_RESULTS_RETRY_S": 60,
        }
    )
    client = app.test_client()
    try:
        first, second = (client.post("/studies", data=files_form(slices)).get_json()["id"] for _ in range(2))
        deadline = time.monotonic() + 30
        while client.get(f"/studies/{second}").get_json()["status"] != "done":
            assert time.monotonic() < deadline, "the second study waited for the first one's results to be sent"
            time.sleep(0.2)
        waiting = client.get(f"/studies/{first}").get_json()
        delivery = waiting["results_delivery"]
        assert waiting["status"] == "done" and (delivery["state"], delivery["attempts"] >= 1) == ("pending", True)
        assert "no association with ORTHANC" in delivery["error"]
    finally:
        app.extensions["study_queue"].close()


def test_the_sr_and_key_images_are_served_to_the_owner(client, study, slices):
    uids = {pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID for data in slices.values()}
    sr = client.get(f"/studies/{study['id']}/dicom/sr.dcm")
    assert sr.status_code == 200 and sr.mimetype == "application/dicom"
    archive = client.get(f"/studies/{study['id']}/dicom/key-images.zip")
    assert archive.status_code == 200 and archive.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.data)) as opened:
        images = [opened.read(name) for name in opened.namelist()]
        dated = {info.date_time for info in opened.infolist()}
    assert len(images) == len(study["key_slices"])
    check_results(study, [sr.data, *images], uids)
    # Dated when the study finished (a ZIP keeps even seconds), not when asked for: every download is the same file.
    finished = datetime.fromisoformat(study["finished_at"])
    assert dated == {(*finished.timetuple()[:5], finished.second // 2 * 2)}
    assert client.get(f"/studies/{study['id']}/dicom/other.dcm").status_code == 404
    assert client.get("/studies/unknown/dicom/sr.dcm").status_code == 404


def test_deleting_a_received_study_deletes_every_copy_of_its_instances(app, client):
    """The listener keeps what it receives (to know a series sent again); a user who deletes the study deletes those
    copies too, once no other study of the series is left. A series sent again after that is a new study."""
    slices = dict(list(series_bytes().items())[16:22])  # none of the other tests' slices
    first, added = dict(list(slices.items())[:5]), dict(list(slices.items())[5:])
    earlier = received_study(app, first)
    later = received_study(app, added)  # a new instance: a new set, the whole series again
    assert later["slice_count"] == 6
    assert client.delete(f"/studies/{earlier['id']}").status_code == 204
    assert held_files(app, slices) == set(slices) and received_objects(app)  # the later study's, and the series'

    assert client.delete(f"/studies/{later['id']}").status_code == 204
    assert held_files(app, slices) == set() and received_objects(app) == []
    again = received_study(app, slices)
    assert again["id"] not in (earlier["id"], later["id"]) and again["slice_count"] == 6


def received_study(app, slices) -> dict:
    """The study made of `slices` sent by C-STORE (queued or running: deleting one is the same delete)."""
    known = {doc["id"] for doc in studies_of(app, "local")}
    c_store(app.config["DICOM_PORT"], "MODALITY", slices)
    deadline = time.monotonic() + 60
    while not (made := [doc for doc in studies_of(app, "local") if doc["id"] not in known]):
        assert time.monotonic() < deadline, "no study made of the received series"
        time.sleep(0.1)
    return made[0]


def held_files(app, slices) -> set[str]:
    """Which of the `slices` (by name) the service holds a copy of (an instance of the same SOP Instance UID, as
    received: C-STORE sends the data set, not the file), anywhere in its data folder."""
    names = {pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID: name for name, data in slices.items()}
    held = set()
    for folder, _, files in os.walk(app.config["DATA_DIR"]):  # a deleted study's worker may be removing its batch
        for file in files:
            try:
                held.add(names.get(pydicom.dcmread(Path(folder) / file, stop_before_pixels=True).get("SOPInstanceUID")))
            except (pydicom.errors.InvalidDicomError, FileNotFoundError):
                continue
    return held - {None}


def received_objects(app) -> list[str]:
    return app.extensions["image_store"].list_older_than("dicom/received/", EVERYTHING)


@pytest.fixture(scope="module")
def accounts_app(tmp_path_factory):
    """AUTH_MODE=firebase (no token is ever checked here: nothing reaches Firebase) with a DICOM listener."""
    app = create_app(
        {
            "DATA_DIR": str(tmp_path_factory.mktemp("dicom-accounts") / "data"),
            "TESTING": True,
            "AUTH_MODE": "firebase",
            "GOOGLE_CLOUD_PROJECT": "demo-ct-dicom",
            "FIREBASE_API_KEY": "key",
            "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:1",
            **listening(),
        }
    )
    listener = start_dicom(app)
    yield app
    listener.stop()
    app.extensions["auth"].close()
    app.extensions["study_queue"].close()


def studies_of(app, owner) -> list[dict]:
    return app.extensions["store"].list_studies(100, None, owner=owner)[0]


def test_a_series_received_by_c_store_becomes_a_study_of_dicom_owner_once(accounts_app, slices, caplog):
    caplog.set_level(logging.INFO, logger="backend.dicom.collector")
    c_store(accounts_app.config["DICOM_PORT"], "MODALITY", slices)
    deadline = time.monotonic() + 60
    while not studies_of(accounts_app, "dicom"):
        assert time.monotonic() < deadline, "no study made of the received series"
        time.sleep(0.2)
    [study] = studies_of(accounts_app, "dicom")
    assert study["source"] == {"protocol": "C-STORE", "calling_ae": "MODALITY"}
    assert study["slice_count"] == len(slices) and study["filename"] == "6 instances by C-STORE from MODALITY"

    c_store(accounts_app.config["DICOM_PORT"], "MODALITY", slices)  # the same set again: no second study
    while f"the same {len(slices)} instances as before, no new study" not in caplog.text:  # the collector's verdict
        assert time.monotonic() < deadline, "the set sent again was never judged"
        time.sleep(0.1)
    assert [doc["id"] for doc in studies_of(accounts_app, "dicom")] == [study["id"]]
    while (study := accounts_app.extensions["store"].get_study(study["id"]))["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline + 240, "the study did not finish"
        time.sleep(0.2)
    assert study["status"] == "done" and study["dicom_results"]["sr"]


def test_stow_rs_asks_for_a_token_like_every_api_call(accounts_app, slices):
    content_type, body = multipart(list(slices.values()))
    response = accounts_app.test_client().post("/dicomweb/studies", data=body, content_type=content_type)
    assert (response.status_code, response.get_json()["error"]) == (401, "sign_in_required")
