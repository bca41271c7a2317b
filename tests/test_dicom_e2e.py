"""DICOM in and out with a real Orthanc, end to end, through real service processes.

The real CT series is stored in Orthanc and pushed from it (`/modalities/<id>/store`) to the service's
listener: it becomes a study, and its answer comes back into Orthanc's study as an SR whose score is the
study's `prediction.score` and whose references point at slices of that series, and key images that
decode. The same with STOW-RS in (POST /dicomweb/studies) and out (to Orthanc's DICOMweb). A caller the
listener does not know is refused. A series pushed to a service whose PACS for results is down: the study
is done and served, and the dashboard follows its delivery: trying again after a failed attempt, then
failed, and why. Each service is started once for the module.
"""

import io
import json
import time
import urllib.parse
import zipfile
from pathlib import Path

import pydicom
import pytest
from playwright.sync_api import expect

from backend.dicom.dicomweb import multipart
from tests.fixtures.dicom_peer import associate
from tests.fixtures.dicom_study import check_results, series_files
from tests.fixtures.http import request
from tests.fixtures.server import free_port, started_server

pytestmark = pytest.mark.orthanc


@pytest.fixture(scope="module")
def files() -> list[bytes]:
    return [path.read_bytes() for path in series_files()]


@pytest.fixture(scope="module")
def dimse_node(orthanc_server, tmp_path_factory):
    """A service listening for DICOM (Orthanc its only allowed caller) and sending results to Orthanc by C-STORE;
    Orthanc knows it as the modality `service`."""
    folder, port = tmp_path_factory.mktemp("dimse-node"), free_port()
    env = {
        "DATA_DIR": str(folder / "data"),
        "DICOM_PORT": str(port),
        "DICOM_STABLE_S": "1",
        "DICOM_ALLOWED_AES": "ORTHANC",
        "DICOM_RESULTS_RETRY_S": "20",
        "DICOM_RESULTS_TO": f"ORTHANC@127.0.0.1:{orthanc_server.dicom_port}",
    }
    with started_server(env, log_path=folder / "server.log") as server:
        orthanc_server.register("service", "CTANALYSIS", port)
        server.dicom_port = port
        yield server


@pytest.fixture(scope="module")
def down_node(orthanc_server, tmp_path_factory):
    """A service listening for DICOM whose PACS for results is down (nothing listens at DICOM_RESULTS_TO); Orthanc
    knows it as the modality `down`."""
    folder, port = tmp_path_factory.mktemp("down-node"), free_port()
    env = {
        "DATA_DIR": str(folder / "data"),
        "DICOM_PORT": str(port),
        "DICOM_STABLE_S": "1",
        "DICOM_ALLOWED_AES": "ORTHANC",
        "DICOM_RESULTS_RETRY_S": "10",  # long enough to open the study in the dashboard while it is still trying
        "DICOM_RESULTS_TO": f"ORTHANC@127.0.0.1:{free_port()}",
    }
    with started_server(env, log_path=folder / "server.log") as server:
        orthanc_server.register("down", "CTANALYSIS", port)
        server.results_to = env["DICOM_RESULTS_TO"]
        yield server


@pytest.fixture(scope="module")
def stow_node(orthanc_server, tmp_path_factory):
    """A service without a listener, sending results to Orthanc's DICOMweb (STOW-RS)."""
    folder = tmp_path_factory.mktemp("stow-node")
    env = {"DATA_DIR": str(folder / "data"), "DICOM_RESULTS_RETRY_S": "20", "DICOM_RESULTS_TO": orthanc_server.dicomweb}
    with started_server(env, log_path=folder / "server.log") as server:
        yield server


def get_json(url):
    status, _, body = request("GET", url)
    assert status == 200, body
    return json.loads(body)


def study_when(base_url, study_uid, condition, timeout_s=600) -> dict:
    """The one study of `study_uid`, once `condition(study)` holds."""
    deadline, query = time.monotonic() + timeout_s, urllib.parse.urlencode({"study_uid": study_uid})
    while True:
        items = get_json(f"{base_url}/studies?{query}")["items"]
        if items:
            assert len(items) == 1, items
            study = get_json(f"{base_url}/studies/{items[0]['id']}")
            if condition(study):
                return study
        assert time.monotonic() < deadline, f"no study of {study_uid} as expected in {timeout_s} s"
        time.sleep(0.5)


def finished_study(base_url, study_uid) -> dict:
    """The one study of `study_uid`, once it is done (or failed) and its results' delivery is over."""
    return study_when(
        base_url,
        study_uid,
        lambda study: (
            study["status"] in ("done", "failed") and study.get("results_delivery", {}).get("state") != "pending"
        ),
    )


def results_in_orthanc(orthanc, study_uid) -> list[bytes]:
    """What Orthanc holds in the study besides CT slices: the results sent to it."""
    kept = orthanc.instances_of_study(study_uid)
    return [data for data in kept if pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).Modality != "CT"]


def served(base_url, study) -> set[str]:
    """The SOP Instance UIDs of the results the service serves for `study`."""
    status, _, sr = request("GET", f"{base_url}/studies/{study['id']}/dicom/sr.dcm")
    assert status == 200
    status, _, archive = request("GET", f"{base_url}/studies/{study['id']}/dicom/key-images.zip")
    assert status == 200
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        images = [opened.read(name) for name in opened.namelist()]
    return {pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID for data in (sr, *images)}


def slice_uids(files) -> set[str]:
    return {pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID for data in files}


def test_a_series_pushed_from_orthanc_comes_back_as_an_sr_and_key_images(orthanc, dimse_node, files):
    uploaded = orthanc.upload(series_files())
    study_uid = pydicom.dcmread(io.BytesIO(files[0]), stop_before_pixels=True).StudyInstanceUID
    answer = orthanc.call(
        "POST", "/modalities/service/store", {"Resources": [uploaded[0]["ParentSeries"]], "Synchronous": True}
    )
    assert answer["FailedInstancesCount"] == 0 and answer["InstancesCount"] == len(files)

    study = finished_study(dimse_node.base_url, study_uid)
    assert study["status"] == "done" and study["slice_count"] == len(files), study.get("error")
    assert study["owner"] == "local" and study["source"] == {"protocol": "C-STORE", "calling_ae": "ORTHANC"}
    assert study["results_delivery"] == {
        "state": "sent",
        "to": f"ORTHANC@127.0.0.1:{orthanc.dicom_port}",
        "error": None,
        "attempts": 1,
    }
    results = results_in_orthanc(orthanc, study_uid)
    check_results(study, results, slice_uids(files))
    assert served(dimse_node.base_url, study) == slice_uids(results)  # the very instances sent


def test_a_caller_the_listener_does_not_know_is_refused(orthanc, dimse_node):
    assoc = associate(dimse_node.dicom_port, "STRANGER")
    assert assoc.is_rejected
    orthanc.call("POST", "/modalities/service/echo", {})  # Orthanc, which it knows, is still answered


def test_a_pacs_that_is_down_leaves_the_delivery_failed_and_the_study_intact(orthanc, down_node, files, page):
    uploaded = orthanc.upload(series_files())
    study_uid = pydicom.dcmread(io.BytesIO(files[0]), stop_before_pixels=True).StudyInstanceUID
    orthanc.call("POST", "/modalities/down/store", {"Resources": [uploaded[0]["ParentSeries"]], "Synchronous": True})

    # While it is still trying, the dashboard says where the study came from, which attempt failed and why, and
    # that it is trying again; the line follows the delivery without a reload until it gives up.
    trying = study_when(
        down_node.base_url, study_uid, lambda study: (study.get("results_delivery") or {}).get("error") is not None
    )
    assert trying["status"] == "done" and trying["results_delivery"]["state"] == "pending", trying["results_delivery"]
    page.goto(down_node.base_url + "/")
    page.locator("#studies-list .card-open").click()
    delivery_line = page.locator("#study-delivery")
    expect(page.locator("#study-source")).to_have_text("Received by C-STORE from ORTHANC.")
    expect(delivery_line).to_contain_text(f"Sending the results to {down_node.results_to}: attempt ")
    expect(delivery_line).to_contain_text(f"failed ({trying['results_delivery']['error']}); trying again…")
    expect(delivery_line).to_contain_text(f"could not be sent to {down_node.results_to}", timeout=30_000)
    expect(delivery_line).to_contain_text("gave up after 10 s")

    study = finished_study(down_node.base_url, study_uid)
    assert study["status"] == "done" and 0 <= study["prediction"]["score"] <= 1 and len(study["slices"]) == len(files)
    delivery = study["results_delivery"]
    assert (delivery["state"], delivery["to"]) == ("failed", down_node.results_to)
    assert "gave up after 10 s" in delivery["error"]
    assert len(served(down_node.base_url, study)) == 1 + len(study["key_slices"])  # kept, to be fetched
    assert results_in_orthanc(orthanc, study_uid) == []

    # The results that did not reach the PACS are offered to download instead.
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the key images (ZIP)").click()
    status, _, archive = request("GET", f"{down_node.base_url}/studies/{study['id']}/dicom/key-images.zip")
    assert status == 200 and Path(download.value.path()).read_bytes() == archive


def test_stow_rs_in_and_out(orthanc, stow_node, files):
    content_type, body = multipart(files)
    status, headers, answer = request(
        "POST",
        f"{stow_node.base_url}/dicomweb/studies",
        body,
        {"Content-Type": content_type, "Accept": "application/dicom+json"},
    )
    assert status == 200, answer
    taken = pydicom.Dataset.from_json(json.loads(answer))
    assert {item.ReferencedSOPInstanceUID for item in taken.ReferencedSOPSequence} == slice_uids(files)
    assert "FailedSOPSequence" not in taken
    [study_id] = {name.lower(): value for name, value in headers.items()}["x-study-id"].split(",")

    study_uid = pydicom.dcmread(io.BytesIO(files[0]), stop_before_pixels=True).StudyInstanceUID
    study = finished_study(stow_node.base_url, study_uid)
    assert study["id"] == study_id and study["status"] == "done", study.get("error")
    assert study["source"] == {"protocol": "STOW-RS"}
    assert study["results_delivery"] == {"state": "sent", "to": orthanc.dicomweb, "error": None, "attempts": 1}
    results = results_in_orthanc(orthanc, study_uid)
    check_results(study, results, slice_uids(files))
    assert served(stow_node.base_url, study) == slice_uids(results)
