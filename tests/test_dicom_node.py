"""The DICOM node inside the service process: its settings, `python backend/app.py` and gunicorn with DICOM_PORT.

Orthanc talks to the real service processes: C-ECHO and a real series pushed to them. Under gunicorn
exactly one worker listens, and the worker that replaces it when it dies takes the port over.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error

import pytest

from backend.app import create_app
from backend.config import ConfigError
from backend.dicom.settings import Destination, parse_destination
from tests.fixtures.data import REPO
from tests.fixtures.dicom_study import series_files
from tests.fixtures.server import GUNICORN, free_port, started_server


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "ORTHANC@127.0.0.1:4242",
            Destination("ORTHANC@127.0.0.1:4242", ae_title="ORTHANC", host="127.0.0.1", port=4242),
        ),
        ("PACS@[::1]:104", Destination("PACS@[::1]:104", ae_title="PACS", host="::1", port=104)),
        (
            "https://user:secret@pacs.example/dicom-web/?token=x",
            Destination("https://pacs.example/dicom-web/", url="https://user:secret@pacs.example/dicom-web/?token=x"),
        ),
        ("", None),
    ],
)
def test_results_destinations_parse_and_never_show_a_password(text, expected):
    assert parse_destination(text) == expected


@pytest.mark.parametrize(
    "settings, words",
    [
        ({"DICOM_PORT": 11112, "DICOM_HOST": "0.0.0.0"}, "DICOM_ALLOWED_AES"),
        ({"DICOM_PORT": 11112, "IMAGE_STORE": "none"}, "needs an image store"),
        ({"DICOM_PORT": 70000}, "not a TCP port"),
        ({"DICOM_AE_TITLE": "A-TITLE-LONGER-THAN-16"}, "not an AE title"),
        ({"DICOM_ALLOWED_AES": ["ORTHANC", "BAD\\AE"]}, "not an AE title"),
        ({"DICOM_RESULTS_TO": "pacs.example:104"}, "neither AE@host:port"),
        ({"DICOM_RESULTS_TO": "http://pacs.example:port/"}, "not a number"),
    ],
)
def test_dicom_settings_that_cannot_work_stop_the_app(tmp_path, settings, words):
    with pytest.raises(ConfigError, match=words):
        create_app({"DATA_DIR": str(tmp_path), **settings})


def test_a_non_loopback_host_with_an_allow_list_is_accepted(tmp_path):
    app = create_app(
        {"DATA_DIR": str(tmp_path), "DICOM_PORT": 11112, "DICOM_HOST": "0.0.0.0", "DICOM_ALLOWED_AES": ["ORTHANC"]}
    )
    assert app.config["DICOM_ALLOWED_AES"] == ["ORTHANC"]


def run(argv, env, tmp_path):
    return subprocess.run(
        argv,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "DATA_DIR": str(tmp_path), "PORT": str(free_port()), **env},
    )


@pytest.mark.parametrize("argv", [[sys.executable, "backend/app.py"], GUNICORN], ids=["app.py", "gunicorn"])
@pytest.mark.parametrize(
    "env, words",
    [
        ({"DICOM_PORT": "11112", "DICOM_HOST": "0.0.0.0"}, "list the calling AE titles allowed in DICOM_ALLOWED_AES"),
        ({"DICOM_RESULTS_TO": "nowhere"}, "DICOM_RESULTS_TO='nowhere'"),
        ({"DICOM_PORT": "{taken}"}, "cannot listen for DICOM on 127.0.0.1"),
    ],
)
@pytest.mark.slow  # starts the service
def test_the_service_refuses_to_start_in_one_line(tmp_path, argv, env, words):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        env = {name: value.format(taken=holder.getsockname()[1]) for name, value in env.items()}
        done = run(argv, env, tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], done.stderr


def orthanc_echo(orthanc, port) -> bool:
    orthanc.register("service", "CTANALYSIS", port)
    try:
        orthanc.call("POST", "/modalities/service/echo", {})
        return True
    except urllib.error.HTTPError:
        return False


def wait_for(condition, timeout_s=30, what="the condition"):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.orthanc
def test_the_service_receives_a_series_from_orthanc(orthanc, tmp_path):
    port = free_port()
    env = {
        "DATA_DIR": str(tmp_path / "data"),
        "DICOM_PORT": str(port),
        "DICOM_STABLE_S": "1",
        "DICOM_ALLOWED_AES": "ORTHANC",
    }
    with started_server(env, log_path=tmp_path / "server.log") as server:
        assert orthanc_echo(orthanc, port)
        series_id = orthanc.upload(series_files())[0]["ParentSeries"]
        answer = orthanc.call("POST", "/modalities/service/store", {"Resources": [series_id], "Synchronous": True})
        assert answer["FailedInstancesCount"] == 0
        wait_for(lambda: any("complete: 30 instances" in line for line in server.log_lines()), what="the series")
    kept = list((tmp_path / "data" / "images" / "dicom" / "received").rglob("*.dcm"))
    assert len(kept) == 30


def holder_pid(lines) -> int | None:
    """The process that logged last that it listens for DICOM."""
    pattern = re.compile(r"DICOM listener \S+ on \S+ in process (\d+)")
    found = [int(match[1]) for line in lines if (match := pattern.search(line))]
    return found[-1] if found else None


@pytest.mark.orthanc
def test_under_gunicorn_one_worker_listens_and_its_replacement_takes_over(orthanc, tmp_path):
    port = free_port()
    env = {
        "DATA_DIR": str(tmp_path / "data"),
        "WEB_CONCURRENCY": "2",
        "THREADS": "1",
        "DICOM_PORT": str(port),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    with started_server(env, argv=GUNICORN, log_path=tmp_path / "server.log", timeout_s=120) as server:
        wait_for(
            lambda: (
                "\n".join(server.log_lines()).count("DICOM port")
                + len([line for line in server.log_lines() if "DICOM listener" in line])
                >= 2
            ),
            what="both workers",
        )
        lines = server.log_lines()
        assert sum("DICOM listener" in line for line in lines) == 1
        assert sum("is held by another process of this service" in line for line in lines) == 1
        assert orthanc_echo(orthanc, port)

        first = holder_pid(lines)
        os.kill(first, signal.SIGKILL)  # the listening worker dies; gunicorn starts another
        wait_for(lambda: holder_pid(server.log_lines()) not in (None, first), timeout_s=90, what="a new listener")
        assert orthanc_echo(orthanc, port)
