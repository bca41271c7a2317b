"""GET /metrics: Prometheus text that moves by exactly the requests made."""

import io

from backend.app import create_app
from tests.fixtures.data import dicom_file
from tests.fixtures.metrics import samples, value


def scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return samples(response.get_data(as_text=True))


def test_requests_stages_and_labels_are_counted(client):
    before = scrape(client)
    created = client.post("/analyze", data={"file": (io.BytesIO(dicom_file("693_UNCR.dcm").read_bytes()), "s.dcm")})
    assert created.status_code == 201
    assert client.get("/analyses/unknown").status_code == 404
    assert client.get("/no/such/page").status_code == 404
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("http_requests_total", method="POST", route="/analyze", status="201") == 1
    assert moved("http_requests_total", method="GET", route="/analyses/<analysis_id>", status="404") == 1
    assert moved("http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    assert moved("http_request_duration_seconds_count", method="POST", route="/analyze", status="201") == 1
    assert moved("http_request_duration_seconds_sum", method="POST", route="/analyze", status="201") > 0
    for stage in ("decode", "model", "images", "findings", "store"):
        assert moved("analysis_stage_duration_seconds_count", stage=stage) == 1, stage
    assert moved("analyses_total", label=created.get_json()["prediction"]["label"]) == 1
    assert value(after, "http_requests_in_flight") == 1  # the scrape itself


def test_metrics_can_be_turned_off(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path), "METRICS": False})
    response = app.test_client().get("/metrics")
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"
