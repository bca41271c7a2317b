"""Shared fixtures: `app` and `client` on the factory with a temporary SQLite store."""
import pytest

from backend.app import create_app

pytest_plugins = ["tests.fixtures.server", "tests.fixtures.firestore_emulator", "tests.fixtures.gcs_emulator",
                  "tests.fixtures.pubsub_emulator",
                  "tests.fixtures.auth_emulator", "tests.fixtures.browser"]


@pytest.fixture
def app(tmp_path):
    return create_app({"STORE": "sqlite", "DATA_DIR": str(tmp_path / "data"), "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()
