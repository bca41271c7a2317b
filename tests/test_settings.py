"""One typed settings object: validated once, described once, and the files that list the settings made from it."""
import re
import subprocess
import sys

import pytest

from backend import config
from backend.app import create_app
from tests.fixtures.data import REPO

OWN_ENVIRONMENT = {"GOOGLE_CLOUD_PROJECT", "FIREBASE_PROJECT_ID", "GOOGLE_APPLICATION_CREDENTIALS",
                   "FIREBASE_CREDENTIALS", "RATE_LIMIT", "AUTH_MODE", "PORT"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in OWN_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


def test_env_example_is_made_from_the_settings():
    assert (REPO / ".env.example").read_text() == config.env_example(), \
        "write config.env_example() to .env.example"


def test_the_readme_settings_table_is_made_from_the_settings():
    readme = (REPO / "README.md").read_text()
    table = readme.split("<!-- settings table: backend.config.markdown_table() -->\n", 1)[1]
    assert table.split("\n<!-- end of settings table -->", 1)[0] == config.markdown_table()


def test_help_lists_every_setting():
    out = subprocess.run([sys.executable, "backend/app.py", "--help"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert all(re.search(rf"^{name}=", out, re.M) for name in config.Settings.model_fields)


def test_nothing_but_the_settings_reads_a_setting_from_the_environment():
    readers = [path.relative_to(REPO).as_posix() for path in (REPO / "backend").rglob("*.py")
               if re.search(r"os\.environ(\.get\(|\[)\"(" + "|".join(config.Settings.model_fields) + r")\"(?!\]\s*=)",
                            path.read_text())]
    assert readers == [], "read settings through backend.config, not os.environ"


@pytest.mark.parametrize("name, fallback", [("GOOGLE_CLOUD_PROJECT", "FIREBASE_PROJECT_ID"),
                                            ("GOOGLE_APPLICATION_CREDENTIALS", "FIREBASE_CREDENTIALS")])
def test_one_name_wins_and_the_other_is_only_a_fallback(monkeypatch, name, fallback):
    monkeypatch.setenv(fallback, "from-the-fallback")
    assert getattr(config.load(), name) == "from-the-fallback"
    monkeypatch.setenv(name, "from-the-name")
    assert getattr(config.load(), name) == "from-the-name"


def test_firestore_storage_and_auth_share_one_project(tmp_path, monkeypatch):
    """Both names set and different: every part uses GOOGLE_CLOUD_PROJECT (they once resolved in opposite orders)."""
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-one")
    monkeypatch.setenv("FIREBASE_PROJECT_ID", "demo-other")
    app = create_app({"DATA_DIR": str(tmp_path), "AUTH_MODE": "firebase", "FIREBASE_API_KEY": "key",
                      "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:1"})
    assert app.extensions["auth"].project == "demo-one" == app.config["GOOGLE_CLOUD_PROJECT"]
    app.extensions["auth"].close()


def test_an_empty_value_means_the_default(monkeypatch):
    monkeypatch.setenv("PORT", "")
    assert config.load().PORT == 5000


def test_a_bad_value_is_one_line_naming_the_setting(monkeypatch):
    monkeypatch.setenv("PORT", "eighty")
    with pytest.raises(config.ConfigError, match=r"^PORT=.eighty. is not a whole number$") as error:
        config.load()
    assert "\n" not in str(error.value)


def test_the_rate_limit_applies_by_default_only_where_there_are_accounts(monkeypatch):
    assert config.load().rate_limit is None
    assert config.load({"AUTH_MODE": "firebase"}).rate_limit == config.ACCOUNTS_RATE_LIMIT
    assert config.load({"RATE_LIMIT": "5/second"}).rate_limit == "5/second"
