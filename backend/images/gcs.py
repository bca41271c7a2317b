"""Objects in a Cloud Storage bucket: Firebase Storage in production, fake-gcs-server in tests.

Through the official google-cloud-storage client. Writes carry if_generation_match=0, so the
bucket itself refuses to overwrite an object (and a retried upload never writes twice). Every
call is retried on transient errors for at most STORE_TIMEOUT_S, then ImageStoreUnavailable (503).
STORAGE_EMULATOR_HOST points the client at an emulator, with anonymous credentials.
"""
import contextlib
import os

import requests
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import TransportError
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from backend.errors import ImageStoreUnavailable
from backend.images.base import PROBE_PATH, ImageStore

UNREACHABLE = (exceptions.GoogleAPICallError, exceptions.RetryError, requests.exceptions.RequestException,
               TransportError)


class GcsImageStore(ImageStore):
    name = "gcs"

    def __init__(self, bucket: str, project: str | None = None, credentials_path: str | None = None,
                 timeout_s: float = 10.0, emulator: str | None = None):
        """`emulator`: STORAGE_EMULATOR_HOST, which the client itself reads from the environment; anonymous there."""
        if credentials_path:
            self.client = storage.Client.from_service_account_json(credentials_path, project=project)
        elif emulator:
            self.client = storage.Client(project=project or "emulator", credentials=AnonymousCredentials())
        else:
            self.client = storage.Client(project=project)
        self.bucket = self.client.bucket(bucket)
        self.timeout_s = timeout_s
        self.retry = DEFAULT_RETRY.with_timeout(timeout_s)

    @classmethod
    def from_config(cls, config):
        return cls(config["STORAGE_BUCKET"], config["GOOGLE_CLOUD_PROJECT"], config["GOOGLE_APPLICATION_CREDENTIALS"],
                   config["STORE_TIMEOUT_S"], config["STORAGE_EMULATOR_HOST"])

    @contextlib.contextmanager
    def _reaching_bucket(self, action, path):
        try:
            yield
        except UNREACHABLE as exc:
            raise ImageStoreUnavailable(f"Cloud Storage did not {action} {path} within {self.timeout_s:g} s",
                                        "images-gcs") from exc

    def _calls(self):
        return {"timeout": self.timeout_s, "retry": self.retry}

    def put(self, path, data, content_type):
        with self._reaching_bucket("write", path):
            try:
                self.bucket.blob(path).upload_from_string(data, content_type=content_type, if_generation_match=0,
                                                          **self._calls())
                return True
            except exceptions.PreconditionFailed:
                return False

    def get(self, path):
        with self._reaching_bucket("read", path):
            try:
                return self.bucket.blob(path).download_as_bytes(**self._calls())
            except exceptions.NotFound:
                return None

    def delete(self, path):
        with self._reaching_bucket("delete", path):
            try:
                self.bucket.blob(path).delete(**self._calls())
            except exceptions.NotFound:
                pass

    def list_older_than(self, prefix, cutoff):
        with self._reaching_bucket("list", prefix):
            return sorted(blob.name for blob in self.client.list_blobs(self.bucket, prefix=prefix, **self._calls())
                          if blob.time_created < cutoff)

    def ping(self, timeout_s):
        """One read, no retries: a probe answers within `timeout_s` (the other calls retry for STORE_TIMEOUT_S)."""
        self.bucket.get_blob(PROBE_PATH, timeout=timeout_s, retry=None)

    def close(self):
        self.client.close()
