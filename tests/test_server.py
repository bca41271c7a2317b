"""The real server process over HTTP, started the two ways users start it."""
import json

from tests.fixtures.data import REPO, dicom_file
from tests.fixtures.http import multipart, request
from tests.fixtures.server import running_server


def test_curl_workflow_against_the_real_server(live_server):
    body, headers = multipart("file", "slice.dcm", dicom_file("693_UNCR.dcm").read_bytes())
    status, response_headers, raw = request("POST", live_server + "/analyze", body, headers)
    assert status == 201
    created = json.loads(raw)
    assert response_headers["Location"] == f"/analyses/{created['id']}"

    status, _, raw = request("GET", live_server + "/analyses")
    assert status == 200 and [d["id"] for d in json.loads(raw)["items"]] == [created["id"]]
    status, _, raw = request("GET", live_server + response_headers["Location"])
    assert status == 200 and json.loads(raw)["created_at"] == created["created_at"]
    assert request("DELETE", live_server + response_headers["Location"])[0] == 204
    status, _, raw = request("GET", live_server + response_headers["Location"])
    assert status == 404 and json.loads(raw)["error"] == "not_found"


def test_oversized_upload_gets_a_json_413(live_server):
    body, headers = multipart("file", "big.dcm", bytes(21 * 1024 * 1024))  # over the default MAX_UPLOAD_MB, 20
    status, _, raw = request("POST", live_server + "/analyze", body, headers)
    assert status == 413 and json.loads(raw)["error"] == "request_entity_too_large"
    assert request("GET", live_server + "/health")[0] == 200


def test_started_from_the_backend_folder(tmp_path):
    """`cd backend && python app.py` is how existing users start it."""
    with running_server({"DATA_DIR": str(tmp_path)}, cwd=REPO / "backend", script="app.py") as base_url:
        status, _, raw = request("GET", base_url + "/health")
        assert status == 200 and json.loads(raw)["status"] == "ok"
