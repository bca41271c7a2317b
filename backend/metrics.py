"""Prometheus metrics at GET /metrics (prometheus_client), aggregated across gunicorn workers.

Under gunicorn, backend/gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before any worker starts;
every worker then writes its numbers to files there and /metrics sums them (the client's
multiprocess mode). Without it (waitress, tests) the numbers are this process's own.

Stages of an analysis are timed with `stage`:

    with metrics.stage("model"):
        prediction = classifier.predict(gray)
"""
import time

from flask import Blueprint, Response, current_app, g, request
from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, multiprocess)

# Seconds: from a cached /health (1 ms) to a slow analysis on a busy machine.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter("http_requests", "HTTP requests answered", ["method", "route", "status"])
REQUEST_SECONDS = Histogram("http_request_duration_seconds", "Time to answer an HTTP request",
                            ["method", "route", "status"], buckets=BUCKETS)
IN_FLIGHT = Gauge("http_requests_in_flight", "HTTP requests being answered now", multiprocess_mode="livesum")
STAGE_SECONDS = Histogram("analysis_stage_duration_seconds", "Time of one stage of an analysis",
                          ["stage"], buckets=BUCKETS)
ANALYSES = Counter("analyses", "Analyses stored, by predicted label", ["label"])
STORE_ERRORS = Counter("store_errors", "Requests that failed because the store did not answer", ["store"])

bp = Blueprint("metrics", __name__)


def stage(name: str):
    """A context manager that adds its block's duration to the `name` stage's histogram."""
    return STAGE_SECONDS.labels(stage=name).time()


@bp.get("/metrics")
def metrics():
    if current_app.config["PROMETHEUS_MULTIPROC_DIR"]:  # set by gunicorn.conf.py for its workers
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def _start():
    IN_FLIGHT.inc()
    g.metrics_started = time.perf_counter()


def _finish(response):
    if g.get("metrics_started") is None:  # a hook registered before ours failed the request
        return response
    # The route's pattern (/analyses/<analysis_id>), never the raw path: one series per route.
    route = request.url_rule.rule if request.url_rule else "<unmatched>"
    labels = {"method": request.method, "route": route, "status": str(response.status_code)}
    REQUESTS.labels(**labels).inc()
    REQUEST_SECONDS.labels(**labels).observe(time.perf_counter() - g.metrics_started)
    return response


def _done(_exc):
    if g.pop("metrics_started", None) is not None:
        IN_FLIGHT.dec()


def init_app(app):
    """Count and time every request and serve /metrics, unless METRICS=0."""
    if not app.config["METRICS"]:
        return
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_done)
    app.register_blueprint(bp)
