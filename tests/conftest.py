"""The suite's plugins (tests/fixtures), the `slow` marker's rule and how the parallel workers share the work."""

import collections
import os
import shutil
import tempfile

import pytest

pytest_plugins = [
    "tests.fixtures.server",
    "tests.fixtures.firestore_emulator",
    "tests.fixtures.gcs_emulator",
    "tests.fixtures.pubsub_emulator",
    "tests.fixtures.auth_emulator",
    "tests.fixtures.browser",
    "tests.fixtures.orthanc",
]


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core for the in-process subset (`-m "not slow"`, busy all the time), one more for
    the whole suite, whose slow tests wait on real things (an emulator restarting, a lease running out, a PACS's
    timeout): the extra worker keeps the cores busy meanwhile."""
    cores = os.cpu_count() or 1
    return cores if config.getoption("markexpr") == "not slow" else cores + 1


def pytest_configure(config):
    """Every service process and app the suite starts shares one MODEL_CACHE_DIR (set before the workers start, which
    inherit it): the first compiles the model, the others load it. The in-process fixtures load where tests run: in
    each worker, or here with `-n 0`."""
    if "MODEL_CACHE_DIR" not in os.environ:
        config.own_model_cache = os.environ["MODEL_CACHE_DIR"] = tempfile.mkdtemp(prefix="ct-model-cache-")
    if os.environ.get("PYTEST_XDIST_WORKER") or not config.getoption("numprocesses", 0):
        config.pluginmanager.import_plugin("tests.fixtures.inprocess")


def pytest_unconfigure(config):
    if own := getattr(config, "own_model_cache", None):
        shutil.rmtree(own, ignore_errors=True)
        del os.environ["MODEL_CACHE_DIR"]


# Tests that start a browser, an emulator, a PACS or a service process are slow by definition:
# `pytest -m "not slow"` is then the in-process suite (Flask's test client, the model, imaging, stores).
PROCESS_MARKERS = {"browser", "firestore", "gcs", "pubsub", "orthanc"}
PROCESS_FIXTURES = {"service", "live_server", "server", "auth_emulator", "auth_env", "orthanc_server"}


# The suite runs in parallel workers (pytest-xdist, `--dist loadgroup` in pyproject.toml). Tests that use a partner
# started for the session (its fixture, or its marker where a parametrized fixture asks for it) are one group, run by
# one worker, so each emulator, Orthanc and the browser starts once, not once per worker; a test needing two goes
# with the first of this list. Every other test, one in a module with its own partner (`own_<fixture>`) included, is
# grouped with its module, so a module's fixtures are made once.
PARTNERS = {
    "orthanc": "orthanc_server",
    "firestore": "firestore_emulator",
    "pubsub": "pubsub_emulator",
    "auth": "auth_emulator",
    "browser": "browser",
    "gcs": "gcs_emulator",
}


def partner_of(markers: set, fixtures: set, module_fixtures: set) -> str | None:
    for marker, fixture in PARTNERS.items():
        if fixture in fixtures or (marker in markers and f"own_{fixture}" not in module_fixtures):
            return fixture
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(items):
    module_fixtures = collections.defaultdict(set)
    for item in items:
        module_fixtures[item.module].update(item.fixturenames)
    for item in items:
        markers = {marker.name for marker in item.iter_markers()}
        fixtures = set(item.fixturenames)
        if markers & PROCESS_MARKERS or PROCESS_FIXTURES & fixtures:
            item.add_marker(pytest.mark.slow)
        group = partner_of(markers, fixtures, module_fixtures[item.module]) or item.module.__name__
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_collection_finish(session):
    """A worker whose tests came back without their group (pytest 9.2 with pytest-xdist 3.8 drops them silently)
    stops the run: the suite would pass, each worker starting every partner, twice as slow."""
    grouped = os.environ.get("PYTEST_XDIST_WORKER") and session.config.getvalue("loadgroup")
    if grouped and session.items and "@" not in session.items[0].nodeid:
        raise pytest.UsageError("pytest-xdist did not apply the test groups: install pytest<9.2 (requirements-dev.txt)")
