"""A bound on concurrent heavy work (decode + model + images), so memory stays bounded under load.

Requests beyond HEAVY_WORK_SLOTS wait up to HEAVY_WORK_WAIT_S for a slot, then get a 503 with
Retry-After: a client retries later instead of every upload at once holding a decoded image.
"""
import contextlib
import os
import threading

from flask import current_app

from backend.errors import Unavailable


def init_app(app):
    slots = app.config["HEAVY_WORK_SLOTS"] or os.cpu_count() or 1
    app.extensions["heavy_work"] = threading.BoundedSemaphore(slots)


@contextlib.contextmanager
def heavy_work_slot():
    semaphore, wait_s = current_app.extensions["heavy_work"], current_app.config["HEAVY_WORK_WAIT_S"]
    if not semaphore.acquire(timeout=wait_s):
        raise Unavailable("busy", headers={"Retry-After": str(max(1, round(wait_s)))})
    try:
        yield
    finally:
        semaphore.release()
