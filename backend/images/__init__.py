"""Choose the object store for full-size images by configuration (IMAGE_STORE) and keep one per app.

IMAGE_STORE=none keeps no objects: analyses hold only their thumbnails, as before this store.
"""
from flask import current_app

from backend.config import ConfigError, check_key_file, google_credentials
from backend.errors import error_response
from backend.images.base import ImageStore, ImageStoreUnavailable


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
    worker (this module imports backend.metrics only when needed, after the master has set up
    prometheus_client's multiprocess folder)."""
    name = config["IMAGE_STORE"]
    if name not in BACKENDS:
        raise ConfigError(f"IMAGE_STORE={name!r} is not one of: {', '.join(BACKENDS)}")
    if name == "gcs":
        if not config["STORAGE_BUCKET"]:
            raise ConfigError("IMAGE_STORE=gcs needs STORAGE_BUCKET (e.g. <project>.firebasestorage.app)")
        check_key_file(config["FIRESTORE_CREDENTIALS"])


def init_app(app):
    check_settings(app.config)
    name = app.config["IMAGE_STORE"]
    app.extensions["image_store"] = BACKENDS[name](app)
    app.register_error_handler(ImageStoreUnavailable, _unavailable)


def _unavailable(exc):
    from backend import metrics

    current_app.logger.warning("image store unavailable: %s", exc)
    metrics.STORE_ERRORS.labels(store=f"images-{current_app.config['IMAGE_STORE']}").inc()
    return error_response(503, "image_store_unavailable",
                          "The image store is not reachable right now; nothing was changed. Try again shortly.")


def get_image_store() -> ImageStore | None:
    """The configured object store, None with IMAGE_STORE=none."""
    return current_app.extensions["image_store"]
