"""The dashboard with AUTH_MODE=firebase: the real server, the Auth emulator, headless Chromium."""

import pytest
from playwright.sync_api import expect

from tests.fixtures.auth_emulator import PASSWORD
from tests.fixtures.browser import screenshot_path
from tests.fixtures.data import covid_ct_image
from tests.fixtures.server import running_server
from tests.test_dashboard import ANALYSIS_TIMEOUT_MS, FAILED_RESOURCE, longer_side

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def firebase_service(auth_emulator, tmp_path_factory):
    """One server for the module: each test's accounts are new (new ids), so no test sees another's analyses."""
    data_dir = tmp_path_factory.mktemp("firebase") / "data"
    with running_server({"STORE": "sqlite", "DATA_DIR": str(data_dir), **auth_emulator.env()}) as base_url:
        yield base_url


@pytest.fixture
def firebase_server(firebase_service, auth_emulator):
    auth_emulator.clear()
    return firebase_service


def sign_in(page, email, password=PASSWORD):
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def test_sign_in_upload_reload_and_keep_users_apart(page, page_errors, firebase_server, auth_emulator, request):
    page_errors.expect(FAILED_RESOURCE + r".*\b400\b")  # the emulator's answer to a wrong password
    auth_emulator.sign_up("alice@example.com")
    auth_emulator.sign_up("bob@example.com")
    emulator = f"http://{auth_emulator.host}/"
    requested = []
    page.on("request", lambda req: requested.append(req.url))
    cards = page.locator("#history-list .card")
    sign_in_form = page.locator("#sign-in-form")

    page.goto(firebase_server + "/")
    expect(sign_in_form).to_be_visible()
    expect(page.locator("#upload-panel")).to_be_hidden()
    expect(page.locator("#history-panel")).to_be_hidden()
    sign_in(page, "alice@example.com", "not the password")
    expect(page.locator("#sign-in-error")).to_have_text("The email or password is not right.")

    sign_in(page, "alice@example.com")
    expect(page.locator("#account-name")).to_have_text("alice@example.com")
    expect(sign_in_form).to_be_hidden()
    expect(page.locator("#history-status")).to_contain_text("No analyses yet")
    ct_slice = covid_ct_image("COVID", 0)
    page.set_input_files("#file-input", ct_slice)
    expect(page.locator("#result")).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
    expect(cards).to_have_count(1)
    page.screenshot(path=screenshot_path(request.node.name, "1-alice-result"), full_page=True)

    # Still signed in after a reload, with the history and its 200 px thumbnails.
    page.reload()
    expect(page.locator("#account-name")).to_have_text("alice@example.com")
    expect(cards).to_have_count(1)
    expect(cards).to_contain_text(ct_slice.name)
    assert longer_side(page, cards.locator(".card-slice")) == 200
    assert longer_side(page, cards.locator(".card-heatmap")) == 200

    page.get_by_role("button", name="Sign out").click()
    expect(sign_in_form).to_be_visible()
    expect(page.locator("#account")).to_be_hidden()
    expect(page.locator("#history-panel")).to_be_hidden()
    expect(cards).to_have_count(0)

    sign_in(page, "bob@example.com")
    expect(page.locator("#account-name")).to_have_text("bob@example.com")
    expect(page.locator("#history-status")).to_contain_text("No analyses yet")
    expect(cards).to_have_count(0)
    page.screenshot(path=screenshot_path(request.node.name, "2-bob-empty"), full_page=True)
    page.get_by_role("button", name="Sign out").click()
    expect(sign_in_form).to_be_visible()

    # Every request went to the service itself or to the Auth emulator; sign-in really used the emulator.
    assert [url for url in requested if not url.startswith((firebase_server + "/", emulator, "data:"))] == []
    assert any(url.startswith(emulator + "identitytoolkit.googleapis.com/") for url in requested)


def test_an_unreachable_service_is_waited_for_never_taken_for_one_without_accounts(page, page_errors, firebase_server):
    page_errors.expect(FAILED_RESOURCE)  # the requests the test cuts off
    page.route("**/auth/config", lambda route: route.abort())
    page.route("**/health", lambda route: route.abort())
    page.goto(firebase_server + "/")
    expect(page.locator("#service-status")).to_have_text("Service unavailable: trying again…")
    page.wait_for_timeout(4000)  # past a retry
    for panel in ("#upload-panel", "#history-panel", "#sign-in"):
        expect(page.locator(panel)).to_be_hidden()
    page.unroute("**/auth/config")
    page.unroute("**/health")
    expect(page.locator("#sign-in-form")).to_be_visible(timeout=10_000)
    expect(page.locator("#service-status")).to_have_text("Service available")
    expect(page.locator("#upload-panel")).to_be_hidden()


def test_a_session_the_service_no_longer_accepts_returns_to_sign_in(page, page_errors, firebase_server, auth_emulator):
    page_errors.expect(FAILED_RESOURCE + r".*\b(400|401)\b")  # the refused upload and token renewal
    alice = auth_emulator.sign_up("alice@example.com")
    page.goto(firebase_server + "/")
    sign_in(page, "alice@example.com")
    expect(page.locator("#history-status")).to_contain_text("No analyses yet")

    auth_emulator.update(alice.uid, disableUser=True)  # mid-session: the service refuses alice's token now
    page.set_input_files("#file-input", covid_ct_image("COVID", 0))
    expect(page.locator("#sign-in-form")).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
    expect(page.locator("#sign-in-error")).to_have_text("Your session has ended: sign in again.")
    expect(page.locator("#upload-panel")).to_be_hidden()
    expect(page.locator("#account")).to_be_hidden()
