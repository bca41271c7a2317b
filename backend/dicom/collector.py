"""Received instances become objects as they arrive; a series is complete when nothing new came for a while.

C-STORE has no "end of series": a scanner or a PACS sends instances, on one association or many, and
stops. Like Orthanc's StableAge, a series counts as complete once DICOM_STABLE_S pass without a new
instance, and is then handed to `on_series` (which makes it a study); but never while an association
that brought some of it is still open, so a sender that pauses mid-association (a busy PACS, a slow
link) does not see its series cut in two. Objects are content-addressed
under dicom/received/<series>/, so an instance sent twice is stored once.

A completed series is remembered in the image store by a small record of the set it held (its
instances' SOP Instance UIDs and sha256s, and the set's fingerprint), written after `on_series`
succeeded. Instances arriving again for that series are added to the last set: if that changes
nothing (the same series re-sent, or part of it), no new study is made; a new or changed instance
makes a new set and a new study. The records survive restarts; an incomplete series cut off by a
restart becomes a study when its sender sends it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from backend.dicom.instances import Instance

PREFIX = "dicom/received/"
ATTEMPTS = 3  # how often a completed series is offered to on_series before it is given up (logged)

if TYPE_CHECKING:  # backend.images imports Flask for its app wiring; this package only calls the store
    from backend.images.base import ImageStore

log = logging.getLogger(__name__)


def received_folder(series_uid: str, calling_ae: str) -> str:
    """Where a series' instances and the records of its sets are kept: one folder per Series Instance UID (per
    sender for instances without one)."""
    key = series_uid or f"no-series-from-{calling_ae}"
    return f"{PREFIX}{hashlib.sha256(key.encode()).hexdigest()[:32]}/"


def sweep_received(store: ImageStore, kept: set[str], cutoff: datetime) -> list[str]:
    """Remove the received series (instances and set records) whose folder is not in `kept` (those of the studies
    that exist) and got nothing since `cutoff`: series that never became a study (refused as one, given up) or whose
    studies' delete missed them. Returns the removed paths."""
    held = store.list_older_than(PREFIX, datetime.now(UTC) + timedelta(days=1))
    old = set(store.list_older_than(PREFIX, cutoff))
    folders: dict[str, list[str]] = {}
    for path in sorted(held):
        folders.setdefault(path[: path.index("/", len(PREFIX)) + 1], []).append(path)
    removed = []
    for folder, paths in folders.items():
        if folder not in kept and old.issuperset(paths):
            for path in paths:
                store.delete(path)
            removed += paths
    return removed


@dataclass(frozen=True)
class Stored:
    """One instance of a series, as kept in the image store."""

    sop_instance_uid: str
    sop_class_uid: str
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Series:
    """A completed series: every instance it holds now (earlier sets included), in SOP Instance UID order."""

    study_uid: str
    series_uid: str
    calling_ae: str
    instances: tuple[Stored, ...]
    fingerprint: str  # sha256 over the instances' UIDs and contents: the same set, the same fingerprint


@dataclass
class _Pending:
    study_uid: str
    series_uid: str
    calling_ae: str
    folder: str
    instances: dict  # SOP Instance UID (or sha256 when it has none) -> Stored
    last: float
    attempts: int = 0
    senders: set = field(default_factory=set)  # each association's "still open?" that brought some of it

    def quiet(self, now: float, stable_s: float) -> bool:
        """Nothing new for stable_s and no association that brought some of it still open."""
        self.senders = {open_ for open_ in self.senders if open_()}
        return now - self.last >= stable_s and not self.senders


class Collector:
    """Writes instances to `store` and hands completed series to `on_series`, from one background thread."""

    def __init__(self, store: ImageStore, on_series: Callable[[Series], None], stable_s: float):
        self.store, self.on_series, self.stable_s = store, on_series, stable_s
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dicom-series", daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stopping.set()
        self._thread.join()

    def receive(self, instance: Instance, calling_ae: str, still_open: Callable[[], bool] | None = None) -> Stored:
        """Keep the instance (create-only: the same bytes twice are one object) and note its series' activity;
        `still_open` tells whether the association it came on is open (its series waits for it to end).
        Raises ImageStoreUnavailable when the store does not take it: then nothing is noted."""
        folder = received_folder(instance.series_uid, calling_ae)
        stored = Stored(
            instance.sop_instance_uid,
            instance.sop_class_uid,
            f"{folder}{instance.sha256}.dcm",
            instance.sha256,
            len(instance.data),
        )
        self.store.put(stored.path, instance.data, "application/dicom")
        with self._lock:
            pending = self._pending.setdefault(
                folder, _Pending(instance.study_uid, instance.series_uid, calling_ae, folder, {}, 0.0)
            )
            pending.instances[instance.sop_instance_uid or instance.sha256] = stored
            pending.last = time.monotonic()
            if still_open:
                pending.senders.add(still_open)
        return stored

    def _run(self):
        while not self._stopping.wait(min(1.0, self.stable_s / 4)):
            self.complete_due()

    def complete_due(self):
        """Complete every series that has been quiet for DICOM_STABLE_S (the background thread calls it)."""
        with self._lock:
            now = time.monotonic()
            due = [key for key, pending in self._pending.items() if pending.quiet(now, self.stable_s)]
            batch = [(key, self._pending.pop(key)) for key in due]
        for key, pending in batch:
            try:
                self._complete(pending)
            except Exception:
                pending.attempts += 1
                if pending.attempts >= ATTEMPTS:
                    log.exception(
                        "series %s from %s given up after %d attempts; sending it again retries",
                        pending.series_uid,
                        pending.calling_ae,
                        pending.attempts,
                    )
                    continue
                log.exception(
                    "series %s from %s could not be completed; trying again in %s s",
                    pending.series_uid,
                    pending.calling_ae,
                    self.stable_s,
                )
                with self._lock:
                    pending.last = time.monotonic()
                    current = self._pending.setdefault(key, pending)
                    if current is not pending:  # more arrived meanwhile: one set with both
                        current.instances = {**pending.instances, **current.instances}

    def _complete(self, pending: _Pending):
        records = sorted(self.store.list_older_than(pending.folder + "sets/", datetime.now(UTC) + timedelta(days=1)))
        instances = dict(pending.instances)
        if records:
            earlier = json.loads(self.store.get(records[-1]) or b"{}")
            instances = {
                **{item["sop_instance_uid"] or item["sha256"]: Stored(**item) for item in earlier.get("instances", [])},
                **instances,
            }
        ordered = tuple(sorted(instances.values(), key=lambda stored: (stored.sop_instance_uid, stored.sha256)))
        lines = "\n".join(f"{stored.sop_instance_uid} {stored.sha256}" for stored in ordered)
        fingerprint = hashlib.sha256(lines.encode()).hexdigest()
        if any(record.endswith(f"-{fingerprint}.json") for record in records):
            log.info(
                "series %s from %s: the same %d instances as before, no new study",
                pending.series_uid,
                pending.calling_ae,
                len(ordered),
            )
            return
        series = Series(pending.study_uid, pending.series_uid, pending.calling_ae, ordered, fingerprint)
        self.on_series(series)
        record = {
            "study_uid": series.study_uid,
            "series_uid": series.series_uid,
            "calling_ae": series.calling_ae,
            "fingerprint": fingerprint,
            "instances": [asdict(stored) for stored in ordered],
        }
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        try:
            self.store.put(
                f"{pending.folder}sets/{stamp}-{fingerprint}.json", json.dumps(record).encode(), "application/json"
            )
        except Exception:  # the study exists; without the record a re-sent series would make another
            log.exception("series %s: its set could not be recorded", series.series_uid)
