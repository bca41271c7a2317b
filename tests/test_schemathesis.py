"""Schemathesis, a tester nobody here wrote, against the running service's /openapi.json with all its checks:
the description says exactly what the service does (0 failures, 0 errors). Its configuration, with the reason
for each operation's expected answers, is tests/schemathesis.toml."""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.data import dicom_file
from tests.fixtures.http import multipart, request

CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED_ANALYSES = 6  # the stateful phase lists, reads, re-analyses and deletes them through the OpenAPI links
SEED_STUDIES = 3  # the same for studies (of one real CT slice each)


@pytest.mark.slow
def test_the_service_does_what_its_openapi_description_says(live_server, tmp_path):
    body, headers = multipart("file", "slice.dcm", dicom_file("693_UNCR.dcm").read_bytes())
    for _ in range(SEED_ANALYSES):
        assert request("POST", live_server + "/analyze", body, headers)[0] == 201
    for _ in range(SEED_STUDIES):
        assert request("POST", live_server + "/studies", body, headers)[0] == 202
    schemathesis = Path(sys.executable).with_name("schemathesis")
    run = subprocess.run([str(schemathesis), "--config-file", str(CONFIG), "run", live_server + "/openapi.json",
                          "--checks", "all", "--max-examples", "25", "--seed", "20261206", "--workers", "1",
                          "--generation-database", "none", "--no-color"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=240)  # its caches there
    assert run.returncode == 0, run.stdout[-12000:]
