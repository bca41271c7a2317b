"""The production command from the README: gunicorn with backend/gunicorn.conf.py, gthread workers."""

import json
import signal
import socket
import time

import pytest

from backend.store.sqlite import SQLiteStore
from tests.fixtures.data import dicom_file
from tests.fixtures.http import multipart, request
from tests.fixtures.metrics import samples, value
from tests.fixtures.server import GUNICORN, started_server

pytestmark = pytest.mark.slow  # starts processes or trains


@pytest.fixture(scope="module")
def gunicorn_server(tmp_path_factory):
    """Two workers of two threads, as a small deployment runs it."""
    tmp = tmp_path_factory.mktemp("gunicorn")
    env = {
        "DATA_DIR": str(tmp / "data"),
        "WEB_CONCURRENCY": "2",
        "THREADS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
    }
    with started_server(env, argv=GUNICORN, log_path=tmp / "server.log", timeout_s=120) as server:
        yield server


def test_gunicorn_serves_the_app(gunicorn_server):
    body, headers = multipart("file", "slice.dcm", dicom_file("693_UNCR.dcm").read_bytes())
    status, response_headers, raw = request("POST", gunicorn_server.base_url + "/analyze", body, headers)
    assert status == 201
    created = json.loads(raw)
    status, _, raw = request("GET", gunicorn_server.base_url + f"/analyses/{created['id']}")
    assert status == 200 and json.loads(raw)["sha256"] == created["sha256"]
    assert "gunicorn" in response_headers.get("Server", "")


def test_two_gthread_workers_each_with_one_torch_thread(gunicorn_server):
    lines = "\n".join(gunicorn_server.log_lines())
    assert "Using worker: gthread" in lines and lines.count("Booting worker with pid") == 2


def _send_part_of_an_upload(base_url, data):
    """Open a connection and send the headers and half the body of a multipart upload."""
    body, headers = multipart("file", "slice.dcm", data)
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    head = (
        f"POST /analyze HTTP/1.1\r\nHost: {host}\r\nContent-Type: {headers['Content-Type']}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    sock.sendall(head + body[: len(body) // 2])
    return sock, body[len(body) // 2 :]


def test_sigterm_lets_an_upload_in_flight_finish_and_be_stored(tmp_path):
    env = {
        "DATA_DIR": str(tmp_path / "data"),
        "WEB_CONCURRENCY": "1",
        "THREADS": "2",
        "LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    with started_server(env, argv=GUNICORN, log_path=tmp_path / "server.log", timeout_s=120) as server:
        sock, rest = _send_part_of_an_upload(server.base_url, dicom_file("693_UNCR.dcm").read_bytes())
        time.sleep(1)  # the worker has the request
        server.process.send_signal(signal.SIGTERM)
        time.sleep(1.5)  # shutdown has begun; the upload is still in flight
        sock.sendall(rest)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
        sock.close()
        assert server.process.wait(30) == 0
    head, _, payload = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201")
    created = json.loads(payload)
    assert SQLiteStore(tmp_path / "data").get(created["id"])["sha256"] == created["sha256"]
    # gunicorn's own lines are JSON too; the upload finished after the signal, before the worker exited
    messages = [json.loads(line)["message"] for line in server.log_lines()]
    signal_at = messages.index("Handling signal: term")
    upload_at = next(i for i, m in enumerate(messages) if m.startswith("POST /analyze 201"))
    exit_at = next(i for i, m in enumerate(messages) if m.startswith("Worker exiting"))
    assert signal_at < upload_at < exit_at


def test_metrics_add_up_across_workers(gunicorn_server):
    """Each scrape lands on either worker; both must report the totals of the whole service."""

    def scrape():
        status, _, raw = request("GET", gunicorn_server.base_url + "/metrics")
        assert status == 200
        return value(samples(raw.decode()), "http_requests_total", method="GET", route="/health", status="200")

    before = scrape()
    for _ in range(8):
        assert request("GET", gunicorn_server.base_url + "/health")[0] == 200
    assert [scrape() - before for _ in range(4)] == [8] * 4


@pytest.mark.parametrize(
    "env, words",
    [
        ({"THREADS": "many"}, "THREADS='many'"),
        ({"HOST": "0.0.0.0"}, "ALLOW_ANONYMOUS=1"),  # the Docker image's HOST
        ({"STORE": "mongodb"}, "STORE='mongodb'"),
        ({"IMAGE_STORE": "s3"}, "IMAGE_STORE='s3'"),
        ({"IMAGE_STORE": "gcs", "STORAGE_BUCKET": ""}, "needs STORAGE_BUCKET"),
        (
            {"AUTH_MODE": "firebase", "FIREBASE_PROJECT_ID": "ct-analysis", "FIREBASE_API_KEY": ""},
            "needs FIREBASE_API_KEY",
        ),
        # a key file the Google clients would refuse in every worker
        ({"STORE": "firestore", "FIREBASE_CREDENTIALS": "{missing}"}, "cannot be read as JSON"),
        (
            {"IMAGE_STORE": "gcs", "STORAGE_BUCKET": "b", "FIREBASE_CREDENTIALS": "{user}"},
            "is not a service-account key",
        ),
        (
            {
                "AUTH_MODE": "firebase",
                "FIREBASE_PROJECT_ID": "ct-analysis",
                "FIREBASE_API_KEY": "key",
                "FIREBASE_CREDENTIALS": "{user}",
            },
            "is not a service-account key",
        ),
    ],
)
def test_a_setting_that_cannot_work_stops_gunicorn_with_one_line_and_status_1(tmp_path, env, words):
    import os
    import subprocess

    from tests.fixtures.data import REPO
    from tests.fixtures.server import free_port

    user_key = tmp_path / "user.json"  # the gcloud user credential: JSON, but not what the Admin SDK takes
    user_key.write_text(json.dumps({"type": "authorized_user", "client_id": "x", "refresh_token": "y"}))
    env = {k: v.format(missing=tmp_path / "missing.json", user=user_key) for k, v in env.items()}
    done = subprocess.run(
        GUNICORN,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DATA_DIR": str(tmp_path), "PORT": str(free_port()), **env},
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and words in done.stderr
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
