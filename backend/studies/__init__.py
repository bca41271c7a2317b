"""Studies run in the background, by the queue STUDY_QUEUE names: `local` (threads in the service process, the
default) or `pubsub` (Cloud Pub/Sub and `python -m backend worker` processes). One queue per app."""
import atexit
import threading

from flask import current_app

from backend.config import ConfigError
from backend.studies.base import StudyQueue


def _local(app, stores, classifier, settings):
    from backend.studies.local import LocalQueue

    return LocalQueue(stores, classifier, settings, app.config["STUDY_WORKERS"], scan=not app.testing)


def _pubsub(app, stores, classifier, settings):
    from backend.studies.pubsub import PubSubQueue

    return PubSubQueue(app.config)


QUEUES = {"local": _local, "pubsub": _pubsub}


def check_settings(config):
    """ConfigError for study settings that cannot work: gunicorn's master checks them before it starts workers."""
    name = config["STUDY_QUEUE"]
    if name not in QUEUES:
        raise ConfigError(f"STUDY_QUEUE={name!r} is not one of: {', '.join(QUEUES)}")
    if name == "pubsub" and not config["PUBSUB_PROJECT"]:
        raise ConfigError("STUDY_QUEUE=pubsub needs PUBSUB_PROJECT (or GOOGLE_CLOUD_PROJECT)")
    for setting in ("STUDY_WORKERS", "STUDY_MAX_SLICES", "STUDY_MAX_UPLOAD_MB", "STUDY_BATCH_SIZE",
                    "STUDY_MAX_ATTEMPTS"):
        if config[setting] < 1:
            raise ConfigError(f"{setting}={config[setting]} must be at least 1")
    if not 10 <= config["PUBSUB_ACK_DEADLINE_S"] <= 600:
        raise ConfigError("PUBSUB_ACK_DEADLINE_S must be from 10 to 600 seconds (Pub/Sub's range)")
    if config["STUDY_LEASE_S"] <= 0:
        raise ConfigError("STUDY_LEASE_S must be a positive number of seconds")


def settings_of(app):
    import torch  # here: gunicorn's master checks the settings without loading PyTorch

    from backend.studies.runner import Settings

    return Settings.from_config(app.config, app.config["TORCH_THREADS"] or torch.get_num_threads())


def init_app(app):
    check_settings(app.config)
    from backend.analysis.record import Stores

    queue = QUEUES[app.config["STUDY_QUEUE"]](app, Stores.of(app), app.extensions["classifier"], settings_of(app))
    app.extensions["study_queue"] = queue
    # On exit (SIGTERM is sys.exit), a study in progress goes back to the queue after its batch. Registered to run
    # before concurrent.futures' own exit hook, which stops every thread pool (the slices' included).
    getattr(threading, "_register_atexit", atexit.register)(queue.close)


def get_queue() -> StudyQueue:
    return current_app.extensions["study_queue"]
