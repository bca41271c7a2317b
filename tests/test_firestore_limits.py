"""backend/store/docsize.py measured against the emulator: at 1,048,576 bytes a document is
accepted, one byte more is rejected; and the store never sends a document over its budget."""
import os
from datetime import datetime, timezone

import pytest
from google.api_core.exceptions import InvalidArgument
from google.cloud import firestore

from backend.store.docsize import (
    FIRESTORE_MAX_DOC_BYTES,
    DocumentTooLarge,
    document_size,
)
from backend.store.firestore import FirestoreStore
from tests.fixtures.firestore_emulator import PROJECT

pytestmark = pytest.mark.firestore

COLLECTION = "analyses"
SHAPES = {
    "strings": {"filename": "693_UNCR.dcm"},
    "multibyte text": {"filename": "lungenbefund-Überprüfung-肺.png"},
    "numbers, booleans, null, timestamp": {"confidence": 0.8125, "count": 3, "reviewed": False, "note": None,
                                           "created_at": datetime(2026, 11, 24, 10, 0, 0, 123456, timezone.utc)},
    "nested maps": {"prediction": {"label": "COVID", "probabilities": {"COVID": 0.8, "NonCOVID": 0.2},
                                   "model": {"about": {"name": "ctnet", "version": "1"}}}},
    "arrays, of maps too": {"findings": ["a", "bb", "ccc"], "regions": [{"lobe": "left", "share": 0.5}, {}]},
    "empty map and array": {"probabilities": {}, "recommendations": [], "model": {"tags": []}},
}


def padded_to(size: int, doc_id: str, fields: dict) -> dict:
    """`fields` plus two string fields (one value may hold at most 1,048,487 bytes) making `size` bytes."""
    missing = size - document_size(COLLECTION, doc_id, {**fields, "pad_a": "", "pad_b": ""})
    doc = {**fields, "pad_a": "x" * (missing // 2), "pad_b": "y" * (missing - missing // 2)}
    assert document_size(COLLECTION, doc_id, doc) == size
    return doc


@pytest.fixture
def client(firestore_env):
    client = firestore.Client(project=PROJECT)
    yield client
    client.close()


@pytest.mark.parametrize("shape", SHAPES)
def test_the_size_rules_match_the_emulator_at_the_limit(client, shape):
    collection = client.collection(COLLECTION)
    collection.document("at-limit").create(padded_to(FIRESTORE_MAX_DOC_BYTES, "at-limit", SHAPES[shape]))
    with pytest.raises(InvalidArgument):
        collection.document("one-over").create(padded_to(FIRESTORE_MAX_DOC_BYTES + 1, "one-over", SHAPES[shape]))
    assert collection.document("at-limit").get().exists and not collection.document("one-over").get().exists


def analysis_of_size(size: int, doc_id: str) -> dict:
    """A service document (thumbnail fields as the padding) that Firestore stores in `size` bytes."""
    created_at = "2026-11-24T10:00:00.000000Z"
    fields = {"id": doc_id, "created_at": created_at, "file_thumbnail": "", "heatmap_url": ""}
    missing = size - document_size(COLLECTION, doc_id, {**fields, "created_at": datetime.now(timezone.utc)})
    return {**fields, "file_thumbnail": "x" * (missing // 2), "heatmap_url": "y" * (missing - missing // 2)}


@pytest.mark.parametrize("budget", [64 * 1024, FIRESTORE_MAX_DOC_BYTES])
def test_the_store_writes_up_to_its_budget_and_refuses_more_without_sending(firestore_env, budget):
    store = FirestoreStore(PROJECT, budget_bytes=budget, emulator=os.environ["FIRESTORE_EMULATOR_HOST"])
    try:
        assert store.create(analysis_of_size(budget, "fits")) == store.get("fits")
        with pytest.raises(DocumentTooLarge):
            store.create(analysis_of_size(budget + 1, "over"))
        assert store.get("over") is None
    finally:
        store.close()


def test_a_budget_above_firestores_limit_is_held_to_the_limit(firestore_env):
    store = FirestoreStore(PROJECT, budget_bytes=4 * FIRESTORE_MAX_DOC_BYTES,
                           emulator=os.environ["FIRESTORE_EMULATOR_HOST"])
    try:
        with pytest.raises(DocumentTooLarge):
            store.create(analysis_of_size(FIRESTORE_MAX_DOC_BYTES + 1, "over"))
    finally:
        store.close()
