"""gunicorn settings for production, all from environment variables (see .env.example).

    gunicorn --config backend/gunicorn.conf.py "backend.app:create_app()"

`gthread` workers: each worker process loads the model once and answers with THREADS threads.
PyTorch gets cores / workers threads in each worker, so workers x torch threads never exceed
the cores. On SIGTERM gunicorn stops accepting and lets requests in flight finish (up to
GRACEFUL_TIMEOUT_S) before the workers exit.
"""

import os
import shutil
import sys
import tempfile

# Imported under names that are not gunicorn settings: every module-level name here is read as one.
from backend.config import ConfigError, flask_config, load
from backend.config import load_dotenv_file as read_dotenv
from backend.dicom.settings import check_port_free as check_dicom_port_free
from backend.logs import configure as configure_logging
from backend.memory import return_freed_buffers
from backend.preflight import check_settings as check_app_settings

read_dotenv()
return_freed_buffers()  # in the master, so every forked worker has it
try:
    settings = flask_config(load())
    check_app_settings(settings)
except ConfigError as exc:  # one line and exit status 1, as `python backend/app.py` answers
    sys.exit(f"error: {exc}")
cores = len(os.sched_getaffinity(0))

bind = f"{settings['HOST']}:{settings['PORT']}"
worker_class = "gthread"
workers = settings["WEB_CONCURRENCY"] or cores
threads = settings["THREADS"]
timeout = settings["WORKER_TIMEOUT_S"]
graceful_timeout = settings["GRACEFUL_TIMEOUT_S"]
# No control socket: its default path is one per user, so two instances on one host would clash.
control_socket_disable = True
# Each worker's PyTorch threads (read by create_app through TORCH_THREADS).
if not settings["TORCH_THREADS"]:
    os.environ["TORCH_THREADS"] = str(max(1, cores // workers))

# Logs: gunicorn's own lines in the service's format; the access line comes from the app.
accesslog = None
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": settings["LOG_LEVEL"], "handlers": []},
    "loggers": {"gunicorn.error": {"level": settings["LOG_LEVEL"], "handlers": [], "propagate": True}},
}


def on_starting(server):
    configure_logging(settings["LOG_LEVEL"], settings["LOG_FORMAT"])
    try:
        check_dicom_port_free(settings)
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
    if settings["METRICS"]:
        _fresh_metrics_dir()


def post_worker_init(worker):
    """Every worker tries to take DICOM_PORT; one gets it (see backend/dicom/node.py)."""
    from backend.app import start_dicom

    worker.dicom_listener = start_dicom(worker.wsgi, unless_taken=True)


def child_exit(server, worker):
    if settings["METRICS"]:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def _fresh_metrics_dir():
    """prometheus_client's multiprocess mode: each worker writes its numbers to files in one folder.

    The folder must be empty at start (stale files would add old counts), so it is made here,
    before any worker imports prometheus_client.
    """
    path = settings["PROMETHEUS_MULTIPROC_DIR"]
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ct-analysis-metrics-")
