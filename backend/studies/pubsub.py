"""STUDY_QUEUE=pubsub: the API publishes each study to a Cloud Pub/Sub topic; `python -m backend worker`
processes (any number, on any machine, the same image) pull and run them.

Delivery is at-least-once, so every message is handled idempotently: the runner's claim is a conditional
update of the study's document, a finished study is acknowledged and skipped, and a study another worker
holds under a live lease is left unacknowledged until that lease would expire (Pub/Sub then redelivers it,
and the next worker resumes it if the holder died). The message is acknowledged only after the study is
done or failed; while a worker runs it, the worker keeps extending the message's ack deadline. A killed
worker extends nothing: its message is redelivered to another worker (PUBSUB_ACK_DEADLINE_S later), which
claims the study once the lease has run out.

PUBSUB_EMULATOR_HOST points the client library at the official emulator (the tests use it).
"""
import contextlib
import json
import logging
import signal
import threading

from google.api_core import exceptions

from backend.errors import Unavailable
from backend.studies import runner
from backend.studies.base import StudyQueue

log = logging.getLogger(__name__)

MAX_ACK_EXTENSION_S = 600  # Pub/Sub's maximum


def _pubsub():
    from google.cloud import pubsub_v1  # only where STUDY_QUEUE=pubsub

    return pubsub_v1


def project(config) -> str | None:
    return config["PUBSUB_PROJECT"] or config["GOOGLE_CLOUD_PROJECT"]


def topic_path(config) -> str:
    return f"projects/{project(config)}/topics/{config['PUBSUB_TOPIC']}"


def subscription_path(config) -> str:
    return f"projects/{project(config)}/subscriptions/{config['PUBSUB_SUBSCRIPTION']}"


def ensure_topic(publisher, topic: str):
    """The topic, made when missing (on the emulator, and where the service account may create topics)."""
    with contextlib.suppress(exceptions.AlreadyExists, exceptions.PermissionDenied):
        publisher.create_topic(name=topic)


def ensure_subscription(subscriber, subscription: str, topic: str, ack_deadline_s: int):
    """The workers' subscription, made when missing: before the first study is published, so none is lost."""
    with contextlib.suppress(exceptions.AlreadyExists, exceptions.PermissionDenied):
        subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=ack_deadline_s)


class PubSubQueue(StudyQueue):
    name = "pubsub"

    def __init__(self, config):
        self.publisher = _pubsub().PublisherClient()
        self.topic = topic_path(config)
        self.config = config
        self.timeout_s = config["STORE_TIMEOUT_S"]
        self._topic_checked = False

    def submit(self, study_id: str):
        try:
            if not self._topic_checked:
                ensure_topic(self.publisher, self.topic)
                subscriber = _pubsub().SubscriberClient()
                ensure_subscription(subscriber, subscription_path(self.config), self.topic,
                                    self.config["PUBSUB_ACK_DEADLINE_S"])
                subscriber.close()
                self._topic_checked = True
            self.publisher.publish(self.topic, json.dumps({"study_id": study_id}).encode()).result(self.timeout_s)
        except Exception as exc:  # unreachable, timed out, refused: the study is not queued
            raise Unavailable("queue_unavailable", cause=f"Pub/Sub did not take study {study_id}: {exc}") from exc

    def close(self):
        self.publisher.stop()


class Worker:
    """`python -m backend worker`: pull one study at a time, run it, acknowledge it when it is finished."""

    def __init__(self, stores, classifier, config, settings: runner.Settings):
        pubsub_v1 = _pubsub()
        self.stores, self.classifier, self.settings = stores, classifier, settings
        self.subscriber = pubsub_v1.SubscriberClient()
        self.subscription = subscription_path(config)
        self.ack_deadline_s = config["PUBSUB_ACK_DEADLINE_S"]
        publisher = pubsub_v1.PublisherClient()
        ensure_topic(publisher, topic_path(config))
        ensure_subscription(self.subscriber, self.subscription, topic_path(config), self.ack_deadline_s)
        self.name = runner.worker_name()
        self.stop = threading.Event()

    def serve(self):
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        log.info("worker %s pulling %s", self.name, self.subscription)
        while not self.stop.is_set():
            try:
                response = self.subscriber.pull(subscription=self.subscription, max_messages=1, timeout=10)
            except (exceptions.DeadlineExceeded, exceptions.ServiceUnavailable, exceptions.RetryError):
                continue
            for received in response.received_messages:
                self.handle(received)

    def handle(self, received):
        ack_id = received.ack_id
        try:
            study_id = json.loads(received.message.data)["study_id"]
        except (ValueError, KeyError, TypeError):
            log.warning("dropping a message that names no study: %r", received.message.data[:100])
            self.subscriber.acknowledge(subscription=self.subscription, ack_ids=[ack_id])
            return
        keeper = threading.Event()
        extender = threading.Thread(target=self._extend, args=(ack_id, keeper), daemon=True)
        extender.start()
        try:
            outcome, doc = runner.run(self.stores, self.classifier, study_id, self.settings, self.name, self.stop)
        except Exception:
            log.exception("study %s: stopped; Pub/Sub redelivers it", study_id)
            outcome, doc = runner.BUSY, None
        finally:
            keeper.set()
            extender.join()
        log.info("study %s: %s", study_id, outcome)
        if outcome in (runner.DONE, runner.SKIPPED, runner.LOST):
            self.subscriber.acknowledge(subscription=self.subscription, ack_ids=[ack_id])
        else:  # BUSY: after the holder's lease (then redelivered); STOPPED: now, to another worker
            delay = 0 if outcome == runner.STOPPED else min(MAX_ACK_EXTENSION_S, max(
                10, int(runner.lease_left_s(doc) + 1) if doc else int(self.settings.lease_s)))
            self.subscriber.modify_ack_deadline(subscription=self.subscription, ack_ids=[ack_id],
                                                ack_deadline_seconds=delay)

    def _extend(self, ack_id: str, done: threading.Event):
        """While the study runs: the message's ack deadline, pushed back every third of it."""
        while not done.wait(self.ack_deadline_s / 3):
            try:
                self.subscriber.modify_ack_deadline(subscription=self.subscription, ack_ids=[ack_id],
                                                    ack_deadline_seconds=self.ack_deadline_s)
            except exceptions.GoogleAPICallError as exc:
                log.warning("could not extend the ack deadline: %s", exc)

    def close(self):
        self.subscriber.close()
