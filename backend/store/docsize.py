"""Firestore's storage-size rules, so a document's size is known before it is written.

https://firebase.google.com/docs/firestore/storage-size: strings count their UTF-8 bytes + 1,
numbers and timestamps 8, booleans and null 1, bytes their length, arrays the sum of their
values, maps the sum of their keys and values (no per-map overhead), a document name the sizes
of its path's ids + 16, each document + 32. Measured against the emulator (tests/test_firestore_limits.py):
an empty map or array counts 1 byte, which the published page leaves out.
"""

from datetime import datetime

FIRESTORE_MAX_DOC_BYTES = 1_048_576
EMPTY_CONTAINER_BYTES = 1


class DocumentTooLarge(ValueError):
    """A document would exceed the store's byte budget; it is refused before anything is sent."""


def string_size(value: str) -> int:
    return len(value.encode("utf-8")) + 1


def value_size(value) -> int:
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, (int, float, datetime)):
        return 8
    if isinstance(value, str):
        return string_size(value)
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(value_size(v) for v in value) if value else EMPTY_CONTAINER_BYTES
    if isinstance(value, dict):
        return sum(string_size(k) + value_size(v) for k, v in value.items()) if value else EMPTY_CONTAINER_BYTES
    raise TypeError(f"no Firestore size rule for {type(value).__name__}")


def document_size(collection: str, doc_id: str, fields: dict) -> int:
    """Bytes Firestore counts for `fields` stored at collection/doc_id (a top-level collection)."""
    name = string_size(collection) + string_size(doc_id) + 16
    return name + sum(string_size(k) + value_size(v) for k, v in fields.items()) + 32


def stored_document_size(collection: str, doc: dict) -> int:
    """Size of a service document (`id`, ISO `created_at`, ...) as Firestore stores it.

    `created_at` is stored as a timestamp, so it counts 8 bytes, not the length of its string.
    """
    created_at = datetime.fromisoformat(doc["created_at"])
    return document_size(collection, doc["id"], {**doc, "created_at": created_at})
