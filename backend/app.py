"""The service's entry point: `create_app()` for WSGI servers and tests, `python backend/app.py` to serve."""
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script (python backend/app.py, or cd backend && python app.py)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask  # noqa: E402
from flask_cors import CORS  # noqa: E402

from backend import config, errors, logs, metrics, store  # noqa: E402
from backend.api import analyses, analyze, health, openapi, web  # noqa: E402
from backend.ml import classifier  # noqa: E402


def create_app(test_config=None):
    app = Flask(__name__, static_folder=None)
    app.config.from_mapping(config.from_env())
    if test_config:
        app.config.from_mapping(test_config)
    logs.init_app(app)
    metrics.init_app(app)
    if app.config["CORS_ORIGINS"]:
        CORS(app, origins=app.config["CORS_ORIGINS"], expose_headers=["Location", "X-Request-ID"])

    errors.init_app(app)
    store.init_app(app)
    classifier.init_app(app)
    for module in (analyze, analyses, health, openapi, web):
        app.register_blueprint(module.bp)
    return app


def main():
    from waitress import serve

    app = create_app()
    host, port = app.config["HOST"], app.config["PORT"]
    app.logger.info("serving on http://%s:%s (store: %s)", host, port, app.config["STORE"])
    # Waitress buffers whole bodies before Flask sees them; its own cap sits well above
    # MAX_UPLOAD_MB so that oversized uploads get Flask's JSON 413, not a dropped connection.
    serve(app, host=host, port=port, threads=8, max_request_body_size=2 * app.config["MAX_CONTENT_LENGTH"] + 2**20)


if __name__ == "__main__":
    main()
