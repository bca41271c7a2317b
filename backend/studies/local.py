"""STUDY_QUEUE=local (the default): studies run in a pool of threads inside the service process.

STUDY_WORKERS studies at a time per process (default 1), each batched through the model on every core.
Nothing is kept only in memory: the study's document says it is queued, so a scan of the store, at start
and then every half lease, resumes what a stopped or killed process left (queued studies, and running ones
whose lease expired). Several processes (gunicorn workers, instances on one store) may scan and submit the
same study: the claim lets one of them run it.
"""

import logging
import queue
import threading

from backend.studies import runner
from backend.studies.base import StudyQueue

log = logging.getLogger(__name__)


class LocalQueue(StudyQueue):
    name = "local"

    def __init__(self, stores, classifier, settings: runner.Settings, workers: int = 1, scan: bool = True):
        self.stores, self.classifier, self.settings = stores, classifier, settings
        self.worker = runner.worker_name()
        self.waiting: queue.Queue = queue.Queue()
        self.pending: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.workers = max(1, workers)
        # Daemon threads, not an executor: at exit, Python would wait for an executor's studies to finish;
        # these are told to stop (close) and hand their study back at the next batch. Started on first use.
        self.threads: list[threading.Thread] = []
        self.scanner = None
        if scan:
            self.scanner = threading.Thread(target=self._scan_forever, name="study-scan", daemon=True)
            self.scanner.start()

    def submit(self, study_id: str):
        with self.lock:
            if study_id in self.pending or self.stop.is_set():
                return
            self.pending.add(study_id)
            if not self.threads:
                self.threads = [
                    threading.Thread(target=self._work, name=f"study-{n}", daemon=True) for n in range(self.workers)
                ]
                for thread in self.threads:
                    thread.start()
        self.waiting.put(study_id)

    def _work(self):
        while not self.stop.is_set():
            study_id = self.waiting.get()
            if study_id is None or self.stop.is_set():  # close() wakes every thread with a None
                return
            self._run(study_id)

    def _run(self, study_id: str):
        outcome, doc = None, None
        try:
            outcome, doc = runner.run(self.stores, self.classifier, study_id, self.settings, self.worker, self.stop)
            log.info("study %s: %s", study_id, outcome)
        except Exception:  # a store away: the lease expires and the scan resumes it
            log.exception("study %s stopped; it resumes after its lease", study_id)
        finally:
            with self.lock:
                self.pending.discard(study_id)
        if outcome == runner.BUSY and doc is not None and runner.delivery_pending(doc):
            self._submit_later(study_id, runner.lease_left_s(doc))  # its results' next attempt, not the next scan

    def _submit_later(self, study_id: str, delay_s: float):
        timer = threading.Timer(max(0.0, delay_s), self.submit, [study_id])
        timer.daemon = True
        timer.start()

    def scan(self):
        """Submit every study a worker may claim now: queued ones, and running ones whose lease expired."""
        for doc in self.stores.documents.unfinished_studies():
            if runner.claimable(doc):
                self.submit(doc["id"])

    def _scan_forever(self):
        interval = max(0.5, self.settings.lease_s / 2)
        while not self.stop.is_set():
            try:
                self.scan()
            except Exception as exc:  # the store away: try again at the next scan
                log.warning("study scan failed: %s", exc)
            self.stop.wait(interval)

    def close(self, timeout_s: float = 20):
        """Stop: a study in progress is handed back (queued) after its current batch."""
        self.stop.set()
        for _ in self.threads:
            self.waiting.put(None)
        for thread in self.threads:
            thread.join(timeout_s)
