"""The dashboard end to end: the real server, headless Chromium, real CT slices."""
import json
import re
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import screenshot_path
from tests.fixtures.data import covid_ct_image, dicom_file

pytestmark = pytest.mark.browser

ANALYSIS_TIMEOUT_MS = 120_000  # one CPU inference on a shared, busy machine
# How Chromium notes a failed or non-2xx request in the console; expected where a test causes one.
FAILED_RESOURCE = r"Failed to load resource"


def natural_size(page, locator) -> tuple[int, int]:
    """The rendered <img>'s intrinsic size, once it has loaded."""
    handle = locator.element_handle()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=handle)
    return tuple(handle.evaluate("img => [img.naturalWidth, img.naturalHeight]"))


def longer_side(page, locator) -> int:
    return max(natural_size(page, locator))


def stored_ids(base_url) -> list[str]:
    with urllib.request.urlopen(base_url + "/analyses?limit=100", timeout=30) as response:
        return [doc["id"] for doc in json.load(response)["items"]]


def test_upload_reload_open_and_delete(page, live_server, request):
    ct_slice = covid_ct_image("COVID", 0)
    page.goto(live_server + "/")
    expect(page.locator("#service-status")).to_have_text("Service available")
    expect(page.locator("#history-status")).to_contain_text("No analyses yet")

    page.set_input_files("#file-input", ct_slice)
    result = page.locator("#result")
    expect(result).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
    assert longer_side(page, page.locator("#result-slice")) == 400
    assert longer_side(page, page.locator("#result-heatmap")) == 400
    expect(result.locator(".bars dt")).to_have_text(["COVID", "Non-COVID"])
    expect(result.locator(".prediction .badge")).to_have_text(re.compile(r"^(COVID|Non-COVID)$"))
    expect(result.locator(".findings li").first).not_to_be_empty()
    expect(result.locator(".recommendations li").first).not_to_be_empty()
    expect(result.locator(".model")).to_contain_text("effnet-lite0")
    expect(result).to_contain_text("For research use only")
    expect(page.locator(".legend")).to_contain_text("High activation")
    # The comparison slider lays the heatmap over the slice.
    page.locator("#overlay-opacity").fill("60")
    expect(page.locator("#overlay-value")).to_have_text("60%")
    assert page.locator("#result-overlay").evaluate("img => getComputedStyle(img).opacity") == "0.6"
    # The new analysis is listed at once, with its 200 px thumbnails.
    expect(page.locator("#history-list .card")).to_have_count(1)
    page.screenshot(path=screenshot_path(request.node.name, "1-result"), full_page=True)

    page.reload()
    card = page.locator("#history-list .card")
    expect(card).to_have_count(1)
    expect(result).to_be_hidden()
    expect(page.locator(".note").first).to_contain_text("Open an analysis to see its full-size images")
    assert longer_side(page, card.locator(".card-slice")) == 200
    assert longer_side(page, card.locator(".card-heatmap")) == 200
    expect(card).to_contain_text(ct_slice.name)
    analysis_id = card.get_attribute("data-id")
    assert stored_ids(live_server) == [analysis_id]
    page.screenshot(path=screenshot_path(request.node.name, "2-reloaded"), full_page=True)

    card.locator(".card-open").click()
    dialog = page.locator("#detail-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#detail-title")).to_contain_text(ct_slice.name)
    expect(dialog).to_contain_text(analysis_id)
    # The thumbnails first, then the kept 400 px images, fetched into blob URLs.
    for image in ("#detail-slice", "#detail-heatmap"):
        expect(dialog.locator(image)).to_have_attribute("src", re.compile(r"^blob:"))
        assert longer_side(page, dialog.locator(image)) == 400
    expect(dialog.locator(".bars dd")).to_have_count(2)
    page.screenshot(path=screenshot_path(request.node.name, "3-detail"))

    # Re-analysis: the new result beside the old one, and in the list.
    dialog.get_by_role("button", name="Re-analyse with the current model").click()
    rerun = dialog.locator("#detail-rerun")
    expect(rerun).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
    assert longer_side(page, rerun.locator("#detail-rerun-heatmap")) == 400
    expect(rerun.locator(".bars dd")).to_have_count(2)
    expect(card).to_have_count(2)
    rerun_id = next(i for i in stored_ids(live_server) if i != analysis_id)
    expect(rerun).to_contain_text(rerun_id)
    page.screenshot(path=screenshot_path(request.node.name, "4-reanalysed"), full_page=True)
    card = page.locator(f'#history-list .card[data-id="{analysis_id}"]')

    messages = []
    page.once("dialog", lambda confirm: (messages.append(confirm.message), confirm.accept()))
    dialog.get_by_role("button", name="Delete this analysis").click()
    expect(card).to_have_count(0)
    expect(dialog).to_be_hidden()
    assert messages and ct_slice.name in messages[0]
    expect(page.locator("#history-status")).to_contain_text("Deleted")
    assert stored_ids(live_server) == [rerun_id]


def test_an_analysis_whose_images_are_not_kept_shows_its_thumbnails(page, page_errors, live_server, service):
    page.goto(live_server + "/")
    page.set_input_files("#file-input", covid_ct_image("NonCOVID", 0))
    expect(page.locator("#result")).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
    card = page.locator("#history-list .card")
    for path in (Path(service.data_dir) / "images").rglob("*.jpg"):  # as for an analysis made before they were kept
        path.unlink()
    page_errors.expect(FAILED_RESOURCE + r".*\b404\b")  # image_missing, as the test arranged
    card.locator(".card-open").click()
    dialog = page.locator("#detail-dialog")
    expect(dialog).to_be_visible()
    page.wait_for_load_state("networkidle")
    for image in ("#detail-slice", "#detail-heatmap"):
        expect(dialog.locator(image)).to_have_attribute("src", re.compile(r"^data:image/jpeg"))
        assert longer_side(page, dialog.locator(image)) == 200


def test_dicom_by_keyboard_with_a_window_at_phone_width(page, live_server, request):
    page.set_viewport_size({"width": 390, "height": 844})
    # Playwright turns on file-chooser interception without waiting for it; listening from the
    # start makes sure it is on before the key press (otherwise the chooser is sometimes missed).
    page.on("filechooser", lambda chooser: None)
    page.goto(live_server + "/")
    page.select_option("#window-select", "mediastinal")
    page.locator("#dropzone").focus()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(dicom_file("693_UNCR.dcm"))

    expect(page.locator("#result")).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
    assert natural_size(page, page.locator("#result-slice")) == (400, 400)
    assert natural_size(page, page.locator("#result-heatmap")) == (400, 400)
    # Nothing wider than the phone: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=screenshot_path(request.node.name, "phone"), full_page=True)

    page.locator(".card-open").click()
    dialog = page.locator("#detail-dialog")
    expect(dialog).to_be_visible()
    assert dialog.evaluate("d => d.scrollWidth <= d.clientWidth")
    page.screenshot(path=screenshot_path(request.node.name, "phone-detail"))
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    # Focus goes back to the card that opened the dialog.
    expect(page.locator(".card-open")).to_be_focused()

    # The card cancels with a dismissed confirm and keeps the analysis.
    page.once("dialog", lambda confirm: confirm.dismiss())
    page.locator(".card-delete").click()
    expect(page.locator("#history-list .card")).to_have_count(1)
    assert len(stored_ids(live_server)) == 1


def test_an_api_error_is_shown_in_words(page, live_server, page_errors, tmp_path, request):
    page_errors.expect(FAILED_RESOURCE + r".*\b415\b")
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image\n")
    page.goto(live_server + "/")
    with page.expect_response("**/analyze") as answer:
        page.set_input_files("#file-input", notes)
    assert answer.value.status == 415
    alert = page.locator("#upload-error")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("This file type isn't supported")
    # The API's own sentence, not a code.
    expect(alert).to_contain_text(answer.value.json()["message"])
    expect(page.locator("#result")).to_be_hidden()
    page.screenshot(path=screenshot_path(request.node.name, "error"), full_page=True)


def test_the_api_being_down_is_handled_gracefully(page, live_server, page_errors, request):
    page_errors.expect(FAILED_RESOURCE)
    for pattern in ("**/health", "**/analyses?*", "**/analyze"):
        page.route(pattern, lambda route: route.abort("connectionrefused"))
    page.goto(live_server + "/")
    expect(page.locator("#service-status")).to_have_text("Service unavailable")
    expect(page.locator("#history-status")).to_contain_text("the service isn't answering")

    page.set_input_files("#file-input", dicom_file("693_UNCR.dcm"))
    expect(page.locator("#upload-error")).to_contain_text("The service can't be reached")
    page.screenshot(path=screenshot_path(request.node.name, "down"), full_page=True)

    # Back up: Refresh lists the analyses again without a page reload.
    page.unroute_all()
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#history-status")).to_contain_text("No analyses yet")


def test_an_upload_can_be_cancelled(page, live_server):
    # Hold the request so the upload stays in flight until the person cancels.
    page.route("**/analyze", lambda route: None)
    page.goto(live_server + "/")
    page.set_input_files("#file-input", dicom_file("693_UNCR.dcm"))
    expect(page.locator("#progress-row")).to_be_visible()
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#upload-status")).to_have_text("Upload cancelled.")
    expect(page.locator("#progress-row")).to_be_hidden()
    expect(page.locator("#upload-error")).to_be_hidden()


def upload_directly(base_url, path) -> str:
    boundary = "dashboard-test-boundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(base_url + "/analyze", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=120) as response:
        return json.load(response)["id"]


def test_older_analyses_come_through_the_cursor(page, live_server):
    older = upload_directly(live_server, dicom_file("693_UNCR.dcm"))
    newer = upload_directly(live_server, dicom_file("693_UNCR.dcm"))
    # The real server's pages, one analysis long, so two analyses need the cursor.
    page.route("**/analyses?*", lambda route: route.continue_(url=re.sub(r"limit=\d+", "limit=1", route.request.url)))
    page.goto(live_server + "/")
    cards = page.locator("#history-list .card")
    expect(cards).to_have_count(1)
    assert cards.first.get_attribute("data-id") == newer
    page.get_by_role("button", name="Show older analyses").click()
    expect(cards).to_have_count(2)
    assert cards.nth(1).get_attribute("data-id") == older
    expect(page.get_by_role("button", name="Show older analyses")).to_be_hidden()
