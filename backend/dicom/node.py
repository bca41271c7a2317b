"""This process's DICOM node: the C-STORE listener and its collector, started when DICOM_PORT is set.

Only one process may listen on DICOM_PORT. `python backend/app.py` is one process and starts it (a
port taken stops the start, as for PORT). Under gunicorn each worker tries (backend/gunicorn.conf.py,
post_worker_init): the port is bound without SO_REUSEPORT, so the first worker gets it and the others
learn that it is taken; if the holder dies, the worker gunicorn starts in its place takes it over.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from backend.dicom.collector import Collector, Series
from backend.dicom.scp import Listener

if TYPE_CHECKING:  # backend.images imports Flask for its app wiring; this package only calls the store
    from backend.images.base import ImageStore

log = logging.getLogger(__name__)


def start(config: dict, image_store: ImageStore, on_series: Callable[[Series], None]) -> Listener | None:
    """The started listener, or None without DICOM_PORT; OSError when the address cannot be bound."""
    if not config["DICOM_PORT"]:
        return None
    listener = Listener(
        config["DICOM_AE_TITLE"],
        config["DICOM_ALLOWED_AES"],
        Collector(image_store, on_series, config["DICOM_STABLE_S"]),
    )
    listener.start(config["DICOM_HOST"], config["DICOM_PORT"])
    log.info(
        "DICOM listener %s on %s:%s in process %d",
        config["DICOM_AE_TITLE"],
        config["DICOM_HOST"],
        config["DICOM_PORT"],
        os.getpid(),
    )
    return listener


def start_unless_taken(config: dict, image_store: ImageStore, on_series: Callable[[Series], None]) -> Listener | None:
    """`start`, or None when another process (a sibling worker) holds the port."""
    try:
        return start(config, image_store, on_series)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        log.info(
            "DICOM port %s:%s is held by another process of this service", config["DICOM_HOST"], config["DICOM_PORT"]
        )
        return None
