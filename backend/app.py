"""The service's entry point: `create_app()` for WSGI servers and tests, `python backend/app.py` to serve."""
import argparse
import signal
import sys

from flask import Flask
from flask_cors import CORS

from backend import auth, config, images, logs, memory, metrics, ratelimit, store, studies
from backend.analysis import capacity
from backend.api import analyses, analyze, errors, health, openapi, signin, web
from backend.api import studies as study_routes
from backend.ml import classifier


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
        CORS(app, origins=app.config["CORS_ORIGINS"], expose_headers=["Location", "X-Request-ID"])

    errors.init_app(app)
    auth.init_app(app)
    ratelimit.init_app(app)
    store.init_app(app)
    images.init_app(app)
    classifier.init_app(app)
    capacity.init_app(app)
    studies.init_app(app)
    for module in (analyze, analyses, study_routes, health, openapi, signin, web):
        app.register_blueprint(module.bp)
    return app


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python backend/app.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve the CT slice analysis API and dashboard (default http://127.0.0.1:5000/). "
                    "Stop it with Ctrl+C (or SIGTERM).",
        epilog="Settings come from environment variables, or from a .env file in the working directory "
               "or above it (variables already set win):\n\n" + config.env_example())
    parser.parse_args(argv)
    config.load_dotenv_file()
    memory.return_freed_buffers()
    try:
        app = create_app()
    except config.ConfigError as exc:
        sys.exit(f"error: {exc}")

    from backend.server import serve

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
