"""Shared fixtures (`app` and `client` on the factory with a temporary SQLite store) and the `slow` marker's rule."""

import pytest

from backend.app import create_app

pytest_plugins = [
    "tests.fixtures.server",
    "tests.fixtures.firestore_emulator",
    "tests.fixtures.gcs_emulator",
    "tests.fixtures.pubsub_emulator",
    "tests.fixtures.auth_emulator",
    "tests.fixtures.browser",
    "tests.fixtures.orthanc",
]


@pytest.fixture
def app(tmp_path):
    app = create_app({"STORE": "sqlite", "DATA_DIR": str(tmp_path / "data"), "TESTING": True})
    yield app
    app.extensions["study_queue"].close()  # its threads would go on scanning a deleted store


@pytest.fixture
def client(app):
    return app.test_client()


# Tests that start a browser, an emulator, a PACS or a service process are slow by definition:
# `pytest -m "not slow"` is then the in-process suite (Flask's test client, the model, imaging, stores).
PROCESS_MARKERS = {"browser", "firestore", "gcs", "pubsub", "orthanc"}
PROCESS_FIXTURES = {"service", "live_server", "server", "auth_emulator", "auth_env", "orthanc_server"}


def pytest_collection_modifyitems(items):
    for item in items:
        markers = {marker.name for marker in item.iter_markers()}
        if markers & PROCESS_MARKERS or PROCESS_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
