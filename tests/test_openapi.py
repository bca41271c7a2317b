"""/openapi.json describes every route, and real responses of every route, successes and errors, match it."""
import base64
import io
import time

import pytest
from openapi_spec_validator import validate

from tests.fixtures.data import covid_ct_image, dicom_file
from tests.fixtures.openapi import ResponseChecker, openapi_path
from tests.fixtures.series import edited, files_form, series_bytes


@pytest.fixture
def spec(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def routes(app) -> set[tuple[str, str]]:
    return {(openapi_path(rule.rule), method.lower())
            for rule in app.url_map.iter_rules() for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_the_document_is_valid_openapi_3_1(spec):
    validate(spec)
    assert spec["openapi"].startswith("3.1.")


def test_every_route_is_documented_and_only_those(app, spec):
    documented = {(path, method) for path, operations in spec["paths"].items() for method in operations}
    assert routes(app) == documented


def test_real_responses_of_every_route_match_the_document(app, client, spec):
    app.config["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024
    checker = ResponseChecker(app, spec)

    def call(method, path, **kwargs):
        return checker.check(client.open(path, method=method, **kwargs), method, path)

    def upload(data, name="slice", **form):
        return {"data": {"file": (io.BytesIO(data), name), **form}}

    dicom = dicom_file("693_UNCR.dcm").read_bytes()
    png = covid_ct_image("COVID", 0).read_bytes()

    created = call("POST", "/analyze", **upload(dicom, "s.dcm")).get_json()
    call("POST", "/analyze", json={"image": "data:image/png;base64," + base64.b64encode(png).decode(),
                                   "filename": "s.png"})
    assert call("POST", "/analyze", headers={"Idempotency-Key": "k1"}, **upload(png)).status_code == 201
    replay = call("POST", "/analyze", headers={"Idempotency-Key": "k1"}, **upload(png))
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert call("POST", "/analyze", headers={"Idempotency-Key": "k1"}, **upload(dicom)).status_code == 422
    assert call("POST", "/analyze", data={}).status_code == 400
    assert call("POST", "/analyze", **upload(png[:3000])).status_code == 400
    assert call("POST", "/analyze", **upload(dicom, window="soft")).status_code == 400
    assert call("POST", "/analyze", **upload(b"hello, not an image")).status_code == 415
    assert call("POST", "/analyze", **upload(bytes(3 * 1024 * 1024))).status_code == 413
    assert call("POST", "/analyze", headers={"Origin": "https://elsewhere.example"}, **upload(png)).status_code == 403

    assert call("GET", "/analyses?limit=2").status_code == 200
    assert call("GET", "/analyses?limit=0").status_code == 400
    assert call("GET", "/analyses?cursor=not-ours").status_code == 400
    assert call("GET", f"/analyses/{created['id']}").status_code == 200
    for name in ("slice.jpg", "heatmap.jpg", "original"):
        image = call("GET", f"/analyses/{created['id']}/images/{name}")
        assert image.status_code == 200, name
    assert call("GET", f"/analyses/{created['id']}/images/original",
                headers={"If-None-Match": image.headers["ETag"]}).status_code == 304
    assert call("GET", f"/analyses/{created['id']}/images/other.jpg").status_code == 404
    for _ in range(2):  # the second a replay
        assert call("POST", f"/analyses/{created['id']}/reanalyze", headers={"Idempotency-Key": "r"}).status_code == 201
    assert call("POST", "/analyses/unknown/reanalyze").status_code == 404
    assert call("DELETE", f"/analyses/{created['id']}").status_code == 204
    assert call("GET", f"/analyses/{created['id']}/images/slice.jpg").status_code == 404
    assert call("GET", f"/analyses/{created['id']}").status_code == 404
    assert call("DELETE", f"/analyses/{created['id']}").status_code == 404

    assert call("GET", "/analyses?owner=all").status_code == 403  # the local owner is no admin

    # Studies: a few real slices of the CT series, a study that fails, bad uploads.
    real = series_bytes()
    four = files_form({name: real[name] for name in list(real)[10:14]})
    study = call("POST", "/studies", data=four).get_json()
    cut = {name: data[:len(data) // 2] for name, data in list(real.items())[10:12]}  # headers whole, pixels cut
    failing = call("POST", "/studies", data=files_form(cut)).get_json()
    assert call("POST", "/studies", data={"window": "lung"}).status_code == 400
    mr = files_form({"a.dcm": edited(real["1-10.dcm"], Modality="MR")})
    assert call("POST", "/studies", data=mr).status_code == 422
    assert call("POST", "/studies", data=files_form({"big.dcm": bytes(1100 * 2**20 // 1024)},
                                                    series_uid="x" * 65)).status_code == 400
    for doc in (study, failing):
        deadline = time.monotonic() + 120
        while call("GET", f"/studies/{doc['id']}").get_json()["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert call("GET", "/studies?limit=1").status_code == 200
    assert call("GET", f"/studies?study_uid={study['study_uid']}").status_code == 200
    assert call("GET", "/studies?cursor=not-ours").status_code == 400
    assert call("GET", f"/studies/{study['id']}").get_json()["status"] == "done"
    assert call("GET", f"/studies/{failing['id']}").get_json()["status"] == "failed"
    slice_image = call("GET", f"/studies/{study['id']}/slices/0/heatmap.jpg")
    assert slice_image.status_code == 200
    assert call("GET", f"/studies/{study['id']}/slices/0/heatmap.jpg",
                headers={"If-None-Match": slice_image.headers["ETag"]}).status_code == 304
    assert call("GET", f"/studies/{study['id']}/slices/9/heatmap.jpg").status_code == 404
    assert call("GET", f"/studies/{failing['id']}/slices/0/slice.jpg").status_code == 409
    again = call("POST", f"/studies/{study['id']}/reanalyze")
    assert again.status_code == 202
    assert call("POST", "/studies/unknown/reanalyze").status_code == 404
    for doc in (again.get_json(), study, failing):
        assert call("DELETE", f"/studies/{doc['id']}").status_code == 204
    assert call("GET", f"/studies/{study['id']}").status_code == 404
    assert call("DELETE", f"/studies/{study['id']}").status_code == 404
    for path in ("/health", "/ready", "/metrics", "/openapi.json", "/auth/config", "/", "/static/js/main.js",
                 "/static/css/style.css", "/static/favicon.svg"):
        assert call("GET", path).status_code == 200, path
    etag = client.get("/static/js/main.js").headers["ETag"]
    assert call("GET", "/static/js/main.js", headers={"If-None-Match": etag}).status_code == 304
    assert call("GET", "/static/nothing.js").status_code == 404

    assert checker.seen == routes(app), "a route was not exercised against the document"
