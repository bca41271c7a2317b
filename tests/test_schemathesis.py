"""Schemathesis, a tester nobody here wrote, against the running service's /openapi.json with all its checks:
the description says exactly what the service does (0 failures, 0 errors). Its configuration, with the reason
for each operation's expected answers, is tests/schemathesis.toml."""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.data import REPO, dicom_file
from tests.fixtures.http import multipart, request
from tests.fixtures.server import running_server

CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED_ANALYSES = 6  # the stateful phase lists, reads, re-analyses and deletes them through the OpenAPI links


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with running_server({"DATA_DIR": str(tmp_path_factory.mktemp("schemathesis") / "data")}) as base_url:
        body, headers = multipart("file", "slice.dcm", dicom_file("693_UNCR.dcm").read_bytes())
        for _ in range(SEED_ANALYSES):
            assert request("POST", base_url + "/analyze", body, headers)[0] == 201
        yield base_url


@pytest.mark.slow
def test_the_service_does_what_its_openapi_description_says(service):
    schemathesis = Path(sys.executable).with_name("schemathesis")
    run = subprocess.run([str(schemathesis), "--config-file", str(CONFIG), "run", service + "/openapi.json",
                          "--checks", "all", "--max-examples", "25", "--seed", "20261206", "--workers", "1",
                          "--generation-database", "none", "--no-color"],
                         capture_output=True, text=True, cwd=REPO, timeout=240)
    assert run.returncode == 0, run.stdout[-12000:]
