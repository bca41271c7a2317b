"""Request ids on every response and log line, one access line per request, JSON logs on demand."""

import json
import logging

import pytest

from tests.fixtures.data import dicom_file
from tests.fixtures.http import multipart, request
from tests.fixtures.server import started_server


def test_a_sane_request_id_is_echoed(client):
    response = client.get("/health", headers={"X-Request-ID": "lb-7f3a.2026:11/27"})
    assert response.headers["X-Request-ID"] == "lb-7f3a.2026:11/27"


@pytest.mark.parametrize("sent", [None, "", "x" * 129, "has space", "ünïcode", 'a"b'])
def test_a_missing_or_odd_request_id_is_replaced_by_a_new_one(client, sent):
    headers = {} if sent is None else {"X-Request-ID": sent}
    first = client.get("/health", headers=headers).headers["X-Request-ID"]
    second = client.get("/health", headers=headers).headers["X-Request-ID"]
    assert first != sent and len(first) == 32 and first != second


def test_errors_carry_a_request_id_too(client):
    response = client.get("/analyses/nope", headers={"X-Request-ID": "trace-1"})
    assert response.status_code == 404 and response.headers["X-Request-ID"] == "trace-1"


def test_one_access_line_per_request(client, caplog):
    with caplog.at_level(logging.INFO, logger="backend.access"):
        response = client.get("/analyses?limit=5", headers={"X-Request-ID": "trace-2"})
    lines = [r for r in caplog.records if r.name == "backend.access"]
    assert len(lines) == 1
    line = lines[0]
    assert (line.method, line.path, line.status, line.request_id) == ("GET", "/analyses", 200, "trace-2")
    assert line.bytes == len(response.data) and line.duration_ms >= 0
    assert line.getMessage().startswith(f"GET /analyses 200 {len(response.data)} B ")


def test_an_unknown_log_format_stops_the_service_with_a_clear_error(tmp_path, monkeypatch):
    from backend.app import create_app
    from backend.config import ConfigError

    monkeypatch.setenv("LOG_FORMAT", "yaml")
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        create_app({"DATA_DIR": str(tmp_path)})


@pytest.mark.slow
def test_json_logs_are_one_object_per_line_with_the_request_id(tmp_path):
    env = {"DATA_DIR": str(tmp_path / "data"), "LOG_FORMAT": "json"}
    with started_server(env, log_path=tmp_path / "server.log") as server:
        body, headers = multipart("file", "slice.dcm", dicom_file("693_UNCR.dcm").read_bytes())
        status, response_headers, _ = request(
            "POST", server.base_url + "/analyze", body, {**headers, "X-Request-ID": "upload-42"}
        )
        assert status == 201 and {k.lower(): v for k, v in response_headers.items()}["x-request-id"] == "upload-42"
        request("GET", server.base_url + "/nowhere")
    records = [json.loads(line) for line in server.log_lines()]  # every line must parse
    access = [r for r in records if r["logger"] == "backend.access"]
    upload = next(r for r in access if r["request_id"] == "upload-42")
    assert (upload["method"], upload["path"], upload["status"]) == ("POST", "/analyze", 201)
    assert upload["bytes"] > 10_000 and upload["duration_ms"] > 0
    assert any(r["path"] == "/nowhere" and r["status"] == 404 for r in access)
    assert all({"time", "level", "logger", "message", "request_id"} <= r.keys() for r in records)
