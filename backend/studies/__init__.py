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
    """ConfigError for study settings that cannot work (the numbers are checked by backend.config): gunicorn's
    master checks them before it starts workers."""
    if config["STUDY_QUEUE"] == "pubsub" and not (config["PUBSUB_PROJECT"] or config["GOOGLE_CLOUD_PROJECT"]):
        raise ConfigError("STUDY_QUEUE=pubsub needs PUBSUB_PROJECT (or GOOGLE_CLOUD_PROJECT)")


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
