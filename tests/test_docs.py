"""The documentation shows the service as it is."""
import io

from PIL import Image

from tests.fixtures.dashboard_screenshot import SCREENSHOT, frontend_digest, served_model

REMAKE = "take it again: python -m tests.fixtures.dashboard_screenshot"


def test_the_dashboard_screenshot_shows_the_served_model_and_the_current_dashboard():
    shown = Image.open(io.BytesIO(SCREENSHOT.read_bytes())).text
    assert shown.get("model") == served_model(), f"docs/dashboard.png shows another model: {REMAKE}"
    assert shown.get("frontend") == frontend_digest(), f"the dashboard changed since docs/dashboard.png: {REMAKE}"
