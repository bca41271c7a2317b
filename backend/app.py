"""The service's entry point: `create_app()` for WSGI servers and tests, `python backend/app.py` to serve."""

import argparse
import signal
import sys

from flask import Flask
from flask_cors import CORS

from backend import auth, config, images, logs, memory, metrics, preflight, ratelimit, store, studies
from backend.analysis import capacity
from backend.api import errors
from backend.dicom.settings import check_port_free


def create_app(test_config=None):
    """The app with the settings from the environment; `test_config` overrides settings by name (validated as
    they are) and sets Flask's own keys (TESTING)."""
    test_config = test_config or {}
    settings = config.load({k: v for k, v in test_config.items() if k in config.Settings.model_fields})
    app = Flask(__name__, static_folder=None)
    app.config.from_mapping(config.flask_config(settings))
    app.config.from_mapping({k: v for k, v in test_config.items() if k not in config.Settings.model_fields})
    logs.init_app(app)
    metrics.init_app(app)
    if app.config["CORS_ORIGINS"]:
        CORS(app, origins=app.config["CORS_ORIGINS"], expose_headers=["Location", "X-Request-ID", "X-Study-ID"])

    errors.init_app(app)
    preflight.check_settings(app.config)
    auth.init_app(app)
    ratelimit.init_app(app)
    store.init_app(app)
    images.init_app(app)
    # The model and the routes that use it are imported once the settings and stores are known to work: a refused
    # start, `--help` and gunicorn's master answer without loading PyTorch (seconds of CPU).
    from backend.api import analyses, analyze, dicomweb, health, openapi, signin, web
    from backend.api import studies as study_routes
    from backend.ml import classifier

    classifier.init_app(app)
    capacity.init_app(app)
    studies.init_app(app)
    for module in (analyze, analyses, study_routes, dicomweb, health, openapi, signin, web):
        app.register_blueprint(module.bp)
    return app


def start_dicom(app, unless_taken=False):
    """The DICOM listener for this app's process when DICOM_PORT is set, None without. The server entry points
    call it, not create_app: only one process may listen (backend/dicom/node.py). With `unless_taken` (gunicorn's
    workers) a port held by a sibling gives None; else it raises OSError. Each completed series becomes a study,
    as POST /studies makes one, of `local` (AUTH_MODE=none) or DICOM_OWNER."""
    if not app.config["DICOM_PORT"]:
        return None
    from backend.analysis.record import Stores
    from backend.dicom import node  # pynetdicom, only where DICOM_PORT is set
    from backend.errors import InvalidInput
    from backend.imaging.archive import StudyLimits
    from backend.store.base import LOCAL_OWNER
    from backend.studies.create import create_received

    store = app.extensions["image_store"]
    owner = LOCAL_OWNER if app.config["AUTH_MODE"] == "none" else app.config["DICOM_OWNER"]

    def received(series):
        app.logger.info(
            "DICOM series %s from %s complete: %d instances",
            series.series_uid,
            series.calling_ae,
            len(series.instances),
        )
        files = [
            (stored.path.rsplit("/", 1)[1], lambda path=stored.path: store.get(path) or b"")
            for stored in series.instances
        ]
        try:
            study = create_received(
                Stores.of(app),
                app.extensions["study_queue"],
                app.extensions["classifier"],
                owner,
                files,
                source={"protocol": "C-STORE", "calling_ae": series.calling_ae},
                limits=StudyLimits.from_config(app.config),
            )
        except InvalidInput as exc:  # sending it again would not change that: the series is done with
            app.logger.warning("DICOM series %s from %s is no study: %s", series.series_uid, series.calling_ae, exc)
            return
        app.logger.info("DICOM series %s from %s is study %s", series.series_uid, series.calling_ae, study["id"])

    start = node.start_unless_taken if unless_taken else node.start
    return start(app.config, app.extensions["image_store"], received)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python backend/app.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve the CT slice analysis API and dashboard (default http://127.0.0.1:5000/). "
        "Stop it with Ctrl+C (or SIGTERM).",
        epilog="Settings come from environment variables, or from a .env file in the working directory "
        "or above it (variables already set win):\n\n" + config.env_example(),
    )
    parser.parse_args(argv)
    config.load_dotenv_file()
    memory.return_freed_buffers()
    try:
        check_port_free(config.flask_config(config.load()))  # before the model loads, like the other settings
        app = create_app()
    except config.ConfigError as exc:
        sys.exit(f"error: {exc}")

    from backend.server import serve

    try:
        start_dicom(app)
    except OSError as exc:
        sys.exit(
            f"error: cannot listen for DICOM on {app.config['DICOM_HOST']}:{app.config['DICOM_PORT']}: "
            f"{exc.strerror or exc} (set DICOM_PORT or DICOM_HOST)"
        )
    host, port = app.config["HOST"], app.config["PORT"]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # docker stop: finish, then exit like Ctrl+C
    try:
        # The server's own body cap sits above MAX_UPLOAD_MB (and a study's STUDY_MAX_UPLOAD_MB) so that oversized
        # uploads get the service's own 413.
        largest = max(app.config["MAX_CONTENT_LENGTH"], app.config["STUDY_MAX_UPLOAD_MB"] * 2**20)
        serve(app, host, port, max_body_bytes=2 * largest + 2**20)
    except OSError as exc:
        sys.exit(f"error: cannot listen on {host}:{port}: {exc.strerror or exc} (set PORT or HOST)")


if __name__ == "__main__":
    main()
