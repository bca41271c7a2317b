"""Analyses in Cloud Firestore: one document per analysis, its id the analysis id.

Built on firebase-admin (initialisation, credentials) with google-cloud-firestore underneath.
`created_at` is kept as a Firestore timestamp so the listing sorts on it; everything else is
the service core's document as is. Transient errors are retried with bounded exponential
backoff; when Firestore stays unreachable past STORE_TIMEOUT_S, StoreUnavailable (503).
"""

import contextlib
from datetime import UTC, datetime

from firebase_admin import firestore as admin_firestore
from google.api_core import exceptions
from google.api_core.retry import Retry, if_exception_type
from google.cloud.firestore import FieldFilter, Query
from google.cloud.firestore_v1.field_path import FieldPath

from backend.errors import StoreUnavailable
from backend.store import firebase_app
from backend.store.base import AnalysisStore, IdempotencyConflict, decode_cursor, encode_cursor, preconditions_hold
from backend.store.docsize import FIRESTORE_MAX_DOC_BYTES, DocumentTooLarge, stored_document_size

TRANSIENT_ERRORS = (
    exceptions.ServiceUnavailable,
    exceptions.DeadlineExceeded,
    exceptions.Aborted,
    exceptions.ResourceExhausted,
)
ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
UPDATE_ATTEMPTS = 10  # a study's writers are its worker and, rarely, one claiming or deleting it


def to_timestamp(iso: str) -> datetime:
    return datetime.fromisoformat(iso).astimezone(UTC)


def to_iso(timestamp: datetime) -> str:
    return timestamp.astimezone(UTC).strftime(ISO_FORMAT)


def to_firestore(doc: dict) -> dict:
    return {**doc, "created_at": to_timestamp(doc["created_at"])}


def from_firestore(fields: dict) -> dict:
    return {**fields, "created_at": to_iso(fields["created_at"])}


class FirestoreStore(AnalysisStore):
    name = "firestore"

    def __init__(
        self,
        project,
        credentials_path=None,
        database="(default)",
        collection="analyses",
        timeout_s=10.0,
        budget_bytes=FIRESTORE_MAX_DOC_BYTES,
        emulator=None,
    ):
        self.app = firebase_app.open_app(project, credentials_path, emulator)
        self.client = admin_firestore.client(self.app, database)
        self.collection_name = collection
        self.collection = self.client.collection(collection)
        self.keys = self.client.collection(f"{collection}-idempotency-keys")
        self.studies_name = f"{collection}-studies"
        self.studies = self.client.collection(self.studies_name)
        self.timeout_s = timeout_s
        self.budget_bytes = min(budget_bytes, FIRESTORE_MAX_DOC_BYTES)
        self.retry = Retry(
            predicate=if_exception_type(*TRANSIENT_ERRORS), initial=0.1, maximum=1.0, multiplier=2.0, timeout=timeout_s
        )

    @classmethod
    def from_config(cls, config):
        return cls(
            project=config["GOOGLE_CLOUD_PROJECT"],
            credentials_path=config["GOOGLE_APPLICATION_CREDENTIALS"],
            database=config["FIRESTORE_DATABASE"],
            collection=config["FIRESTORE_COLLECTION"],
            timeout_s=config["STORE_TIMEOUT_S"],
            budget_bytes=config["DOC_BUDGET_BYTES"],
            emulator=config["FIRESTORE_EMULATOR_HOST"],
        )

    @contextlib.contextmanager
    def _reaching_firestore(self, action):
        """Turn "Firestore could not be reached in time" into StoreUnavailable, whatever the call."""
        try:
            yield
        except (exceptions.RetryError, *TRANSIENT_ERRORS) as exc:
            raise StoreUnavailable(f"Firestore did not answer {action} within {self.timeout_s:g} s", self.name) from exc

    def _calls(self):
        return {"retry": self.retry, "timeout": self.timeout_s}

    def create(self, doc: dict, key=None) -> dict:
        size = stored_document_size(self.collection_name, doc)
        if size > self.budget_bytes:
            raise DocumentTooLarge(
                f"analysis {doc['id']} is {size} bytes in Firestore; the budget is {self.budget_bytes}"
            )
        batch = self.client.batch()  # one atomic write: the key record and the document, or neither
        if key is not None:
            batch.create(self.keys.document(key.record_id), {"request": key.request, "analysis_id": doc["id"]})
        batch.create(self.collection.document(doc["id"]), to_firestore(doc))
        with self._reaching_firestore("create"):
            try:
                batch.commit(**self._calls())
                return doc
            except exceptions.AlreadyExists:  # the key's first request (or a retry of this commit) wrote it
                if key is None:
                    raise
                return self.find_by_key(key)

    def find_by_key(self, key):
        with self._reaching_firestore("find_by_key"):
            record = self.keys.document(key.record_id).get(**self._calls())
        if not record.exists:
            return None
        if record.get("request") != key.request:
            raise IdempotencyConflict()
        return self.get(record.get("analysis_id"))

    def get(self, analysis_id: str, owner: str | None = None) -> dict | None:
        with self._reaching_firestore("get"):
            snapshot = self.collection.document(analysis_id).get(**self._calls())
        fields = snapshot.to_dict() if snapshot.exists else None
        if fields is None or (owner is not None and fields.get("owner") != owner):
            return None
        return from_firestore(fields)

    def list(self, limit: int, cursor: str | None = None, owner: str | None = None) -> tuple[list[dict], str | None]:
        return self._page(self.collection, {"owner": owner}, limit, cursor, "list")

    def delete(self, analysis_id: str, owner: str | None = None) -> bool:
        if owner is not None and self.get(analysis_id, owner) is None:  # an analysis's owner never changes
            return False
        with self._reaching_firestore("delete"):
            batch = self.client.batch()
            for record in self.keys.where(filter=FieldFilter("analysis_id", "==", analysis_id)).get(**self._calls()):
                batch.delete(record.reference)
            batch.delete(self.collection.document(analysis_id), option=self.client.write_option(exists=True))
            try:
                batch.commit(**self._calls())
                return True
            except exceptions.NotFound:
                return False

    def _check_size(self, collection, doc):
        size = stored_document_size(collection, doc)
        if size > self.budget_bytes:
            raise DocumentTooLarge(f"{doc['id']} is {size} bytes in Firestore; the budget is {self.budget_bytes}")

    def create_study(self, doc):
        self._check_size(self.studies_name, doc)
        with self._reaching_firestore("create_study"):
            self.studies.document(doc["id"]).create(to_firestore(doc), **self._calls())
        return doc

    def get_study(self, study_id, owner=None):
        with self._reaching_firestore("get_study"):
            snapshot = self.studies.document(study_id).get(**self._calls())
        fields = snapshot.to_dict() if snapshot.exists else None
        if fields is None or (owner is not None and fields.get("owner") != owner):
            return None
        return from_firestore(fields)

    def list_studies(self, limit, cursor=None, owner=None, study_uid=None):
        return self._page(self.studies, {"owner": owner, "study_uid": study_uid}, limit, cursor, "list_studies")

    def _page(self, collection, equal: dict, limit: int, cursor: str | None, operation: str):
        """One page of a collection, newest first, of the documents whose fields equal `equal`'s non-None values
        (served by the composite indexes in firestore.indexes.json); the next page's cursor, or None."""
        query = collection
        for name, value in equal.items():
            if value is not None:
                query = query.where(filter=FieldFilter(name, "==", value))
        query = (
            query.order_by("created_at", direction=Query.DESCENDING)
            .order_by("__name__", direction=Query.DESCENDING)
            .limit(limit + 1)
        )
        if cursor:
            created_at, document_id = decode_cursor(cursor)
            query = query.start_after([to_timestamp(created_at), document_id])
        with self._reaching_firestore(operation):
            snapshots = query.get(**self._calls())
        items = [from_firestore(s.to_dict()) for s in snapshots[:limit]]
        return items, (encode_cursor(items[-1]) if len(snapshots) > limit else None)

    def update_study(self, study_id, changes, expect=None):
        """Read, check the precondition, then write only if the document is unchanged since that read (its update
        time); a writer that lost the race reads again. No lock is held in between: a transaction's lock, taken
        by a worker killed mid-update, kept everyone off the study until Firestore let it go (60 s idle)."""
        reference = self.studies.document(study_id)
        with self._reaching_firestore("update_study"):
            for _ in range(UPDATE_ATTEMPTS):
                snapshot = reference.get(**self._calls())
                if not snapshot.exists:
                    return None
                doc = from_firestore(snapshot.to_dict())
                if not preconditions_hold(doc, expect):
                    return None
                doc = {**doc, **changes}
                self._check_size(self.studies_name, doc)
                fields = {
                    FieldPath(name).to_api_repr(): value for name, value in to_firestore(doc).items() if name in changes
                }
                try:
                    reference.update(
                        fields, option=self.client.write_option(last_update_time=snapshot.update_time), **self._calls()
                    )
                    return doc
                except exceptions.FailedPrecondition:
                    continue  # another writer changed it since the read
                except exceptions.NotFound:
                    return None
        raise StoreUnavailable(f"study {study_id} kept changing under update_study", self.name)

    def delete_study(self, study_id, owner=None):
        if owner is not None and self.get_study(study_id, owner) is None:
            return False
        with self._reaching_firestore("delete_study"):
            try:
                self.studies.document(study_id).delete(option=self.client.write_option(exists=True), **self._calls())
                return True
            except exceptions.NotFound:
                return False

    def unfinished_studies(self, limit=100):
        queries = (
            self.studies.where(filter=FieldFilter("status", "in", ["queued", "running"])),
            self.studies.where(filter=FieldFilter("results_delivery.state", "==", "pending")),  # done, sending
        )
        with self._reaching_firestore("unfinished_studies"):
            snapshots = [snapshot for query in queries for snapshot in query.limit(limit).get(**self._calls())]
        found = {snapshot.id: from_firestore(snapshot.to_dict()) for snapshot in snapshots}
        return sorted(found.values(), key=lambda doc: doc["created_at"])[:limit]

    def ping(self, timeout_s: float):
        """One read, no retries: a readiness probe must answer fast and say "not ready" while Firestore is away."""
        try:
            self.collection.limit(1).get(retry=None, timeout=timeout_s)
        except exceptions.GoogleAPICallError as exc:
            raise StoreUnavailable(f"Firestore did not answer within {timeout_s:g} s", self.name) from exc

    def close(self):
        self.client.close()
        firebase_app.close_app(self.app)
