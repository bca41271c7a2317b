"""The dashboard's studies end to end: the real server, headless Chromium, the real CT series as a folder."""

import json
import re
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import screenshot_path
from tests.fixtures.data import ct_series_dir
from tests.fixtures.series import make_zip, series_bytes

pytestmark = pytest.mark.browser

STUDY_TIMEOUT_MS = 240_000  # 30 slices on a shared, busy 2-core machine


def study_ids(base_url) -> list[dict]:
    with urllib.request.urlopen(base_url + "/studies?limit=100", timeout=30) as response:
        return json.load(response)["items"]


def test_a_folder_becomes_a_study_with_a_viewer_that_survives_a_reload(page, live_server, request):
    page.goto(live_server + "/")
    expect(page.locator("#studies-status")).to_contain_text("No studies yet")
    page.set_input_files("#study-folder-input", ct_series_dir())  # the folder picker, as a user picks a folder
    expect(page.locator("#study-progress-row")).to_be_visible()
    study = page.locator("#study")
    expect(study).to_be_visible(timeout=STUDY_TIMEOUT_MS)
    [stored] = study_ids(live_server)
    with urllib.request.urlopen(f"{live_server}/studies/{stored['id']}", timeout=30) as response:
        doc = json.load(response)
    label = "Non-COVID" if doc["prediction"]["label"] == "NonCOVID" else "COVID"
    expect(page.locator("#study-badge")).to_have_text(label)
    expect(page.locator("#study-score")).to_contain_text(f"{doc['prediction']['assessable_slices']} of 30 slices")
    expect(page.locator("#study-rule")).to_contain_text("top 10%")
    expect(page.locator("#study-findings li").first).to_contain_text("The study is rated")
    expect(page.locator("#study-recommendations li").last).to_contain_text("Research use only")

    # The scroller starts on the first key slice; arrow keys, the wheel and the slider move through the slices.
    first_key = doc["key_slices"][0]["index"]
    caption = page.locator("#study-slice-caption")
    expect(caption).to_contain_text(f"Slice {first_key + 1} of 30")
    expect(page.locator("#study-slice-image")).to_have_attribute("src", re.compile(r"^blob:"))
    viewport = page.locator("#study-viewport")
    viewport.focus()
    page.keyboard.press("ArrowDown")
    expect(caption).to_contain_text(f"Slice {first_key + 2} of 30")
    page.keyboard.press("Home")
    expect(caption).to_contain_text("Slice 1 of 30")
    expect(caption).to_contain_text(f"z = {doc['slices'][0]['z']:.1f} mm")
    viewport.hover()
    page.mouse.wheel(0, 120)
    expect(caption).to_contain_text("Slice 2 of 30")
    page.locator("#study-slider").fill("29")
    expect(caption).to_contain_text("Slice 30 of 30")
    page.locator("#study-heatmap-toggle").check()
    expect(page.locator("#study-heatmap-image")).to_have_css("opacity", "1")
    natural = page.locator("#study-heatmap-image").evaluate("img => img.naturalWidth")
    assert natural == 400

    # The strip chart: one line over the slices, the threshold, each not-assessed slice marked, the key slices.
    chart = page.locator("#study-chart")
    expect(chart.locator(".chart-threshold")).to_have_count(1)
    unassessed = sum(not s["assessable"] for s in doc["slices"])
    expect(chart.locator(".chart-unassessed")).to_have_count(unassessed)
    expect(chart.locator(".chart-key")).to_have_count(len(doc["key_slices"]))
    keys = page.locator("#study-keys .key-slice")
    expect(keys).to_have_count(len(doc["key_slices"]))
    keys.first.click()
    expect(caption).to_contain_text(f"Slice {first_key + 1} of 30")

    # An uploaded study sends nothing to a PACS (DICOM_RESULTS_TO is empty), and its answer as DICOM downloads.
    expect(page.locator("#study-dicom")).to_be_visible()
    expect(page.locator("#study-source")).to_be_hidden()
    expect(page.locator("#study-delivery")).to_be_hidden()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the report (DICOM SR)").click()
    assert download.value.suggested_filename == f"study-{doc['id']}-sr.dcm"
    with urllib.request.urlopen(f"{live_server}/studies/{doc['id']}/dicom/sr.dcm", timeout=30) as response:
        assert Path(download.value.path()).read_bytes() == response.read()
    page.screenshot(path=screenshot_path(request.node.name, "1-study"), full_page=True)

    page.reload()
    card = page.locator("#studies-list .card")
    expect(card).to_have_count(1)
    expect(card.locator("img.card-key")).to_have_count(min(3, len(doc["key_slices"])))
    expect(card).to_contain_text("lung-pet-ct-dx-a0002")
    expect(page.locator("#study")).to_be_hidden()
    card.locator(".card-open").click()
    expect(page.locator("#study")).to_be_visible()
    expect(page.locator("#study-chart .chart-line")).not_to_have_count(0)
    page.screenshot(path=screenshot_path(request.node.name, "2-reloaded"), full_page=True)

    page.once("dialog", lambda confirm: confirm.accept())
    page.get_by_role("button", name="Delete this study").click()
    expect(card).to_have_count(0)
    expect(page.locator("#study")).to_be_hidden()
    assert study_ids(live_server) == []


def test_a_zip_that_is_not_a_study_is_refused_in_words(page, page_errors, live_server, tmp_path):
    page_errors.expect(r"Failed to load resource.*\b422\b")
    archive = tmp_path / "notes.zip"
    archive.write_bytes(make_zip({"notes.txt": b"no images here"}))
    page.goto(live_server + "/")
    page.set_input_files("#study-zip-input", archive)
    error = page.locator("#study-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("This is not a study the service can analyse")
    expect(error).to_contain_text("no DICOM image")
    assert series_bytes()  # the real series is there: the refusal is about this ZIP
