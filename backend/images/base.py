"""The object store contract every backend keeps: create-only put, get, delete, list for the sweep.

Objects are addressed by a path such as analyses/<owner>/<analysis id>/slice.jpg. Their content
type and fingerprint are recorded in the analysis document, which is what the API reads first.
"""
from datetime import datetime


PROBE_PATH = "ready-probe"  # never written: reading it is the cheapest call that reaches the store


class ImageStore:
    name = "base"

    def put(self, path: str, data: bytes, content_type: str) -> bool:
        """Create the object only if `path` is free; False (nothing written) when it already exists."""
        raise NotImplementedError

    def get(self, path: str) -> bytes | None:
        """The object's bytes, None when there is no object at `path`."""
        raise NotImplementedError

    def delete(self, path: str):
        """Remove the object; a missing one is already removed."""
        raise NotImplementedError

    def list_older_than(self, prefix: str, cutoff: datetime) -> list[str]:
        """Paths under `prefix` created before `cutoff` (timezone-aware), for the sweep."""
        raise NotImplementedError

    def ping(self, timeout_s: float):
        """Raise unless the store answers a cheap read within about `timeout_s` (/ready)."""
        self.get(PROBE_PATH)

    def close(self):
        """Release connections (tests and shutdown)."""
