"""firestore.indexes.json serves the listing and keeps the image data URLs out of every index."""
import json

from tests.fixtures.data import REPO


def overrides():
    spec = json.loads((REPO / "firestore.indexes.json").read_text())
    return {o["fieldPath"]: o for o in spec["fieldOverrides"]}, spec["indexes"]


def test_the_listing_sort_key_is_indexed_descending_in_the_default_collection():
    fields, composites = overrides()
    assert composites == []  # created_at + __name__ is a single-field index; Firestore refuses it as composite
    created_at = fields["created_at"]
    assert created_at["collectionGroup"] == "analyses"  # FIRESTORE_COLLECTION's default
    assert {"order": "DESCENDING", "queryScope": "COLLECTION"} in created_at["indexes"]


def test_the_thumbnails_are_exempt_from_indexing():
    fields, _ = overrides()
    for image_field in ("file_thumbnail", "heatmap_url"):
        assert fields[image_field]["indexes"] == []
