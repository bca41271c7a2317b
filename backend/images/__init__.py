"""Choose the object store for full-size images by configuration (IMAGE_STORE) and keep one per app.

IMAGE_STORE=none keeps no objects: analyses hold only their thumbnails, as before this store.
"""
from flask import current_app

from backend.config import ConfigError, check_key_file, google_credentials
from backend.images.base import ImageStore


def _local(app):
    from backend.images.local import LocalImageStore

    return LocalImageStore(app.config["DATA_DIR"])


def _gcs(app):
    from backend.images.gcs import GcsImageStore

    with google_credentials("IMAGE_STORE=gcs"):
        return GcsImageStore.from_config(app.config)


BACKENDS = {"local": _local, "gcs": _gcs, "none": lambda app: None}


def check_settings(config):
    """ConfigError for an unknown IMAGE_STORE, or a bucket store without its bucket or with an unusable key file:
    gunicorn's master checks them before it starts workers, so a bad start is one line, not a failed boot per
    worker."""
    name = config["IMAGE_STORE"]
    if name not in BACKENDS:
        raise ConfigError(f"IMAGE_STORE={name!r} is not one of: {', '.join(BACKENDS)}")
    if name == "gcs":
        if not config["STORAGE_BUCKET"]:
            raise ConfigError("IMAGE_STORE=gcs needs STORAGE_BUCKET (e.g. <project>.firebasestorage.app)")
        check_key_file(config["GOOGLE_APPLICATION_CREDENTIALS"])


def init_app(app):
    check_settings(app.config)
    name = app.config["IMAGE_STORE"]
    app.extensions["image_store"] = BACKENDS[name](app)


def get_image_store() -> ImageStore | None:
    """The configured object store, None with IMAGE_STORE=none."""
    return current_app.extensions["image_store"]
