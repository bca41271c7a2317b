"""Settings that cannot work, found from the settings alone (no model loaded, no store reached): `python
backend/app.py` and gunicorn's master refuse to start on them in one line, before any worker or model loads.
Imports nothing that writes at import time (the metrics' files live in a folder gunicorn makes later)."""

from backend import auth, images, store, studies
from backend.dicom import settings as dicom_settings

CHECKS = (
    auth.check_settings,
    store.check_settings,
    images.check_settings,
    studies.check_settings,
    dicom_settings.check_settings,
)


def check_settings(settings):
    """ConfigError for the first setting that cannot work."""
    for check in CHECKS:
        check(settings)
