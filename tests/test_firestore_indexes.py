"""firestore.indexes.json serves the listing and keeps the image data URLs out of every index."""
import json

from tests.fixtures.data import REPO


def overrides():
    spec = json.loads((REPO / "firestore.indexes.json").read_text())
    return {o["fieldPath"]: o for o in spec["fieldOverrides"]}, spec["indexes"]


def test_the_listing_sort_key_is_indexed_descending_in_the_default_collection():
    fields, _ = overrides()  # created_at + __name__ is a single-field index; Firestore refuses it as composite
    created_at = fields["created_at"]
    assert created_at["collectionGroup"] == "analyses"  # FIRESTORE_COLLECTION's default
    assert {"order": "DESCENDING", "queryScope": "COLLECTION"} in created_at["indexes"]


def test_the_thumbnails_and_the_image_list_are_exempt_from_indexing():
    fields, _ = overrides()
    for image_field in ("file_thumbnail", "heatmap_url", "images"):
        assert fields[image_field]["indexes"] == []


def test_each_owners_listing_has_its_composite_index():
    """owner == X ordered by created_at DESC (then __name__ DESC, which Firestore adds itself)."""
    _, composites = overrides()
    composites = [index for index in composites if index["collectionGroup"] == "analyses"]
    assert composites == [{"collectionGroup": "analyses", "queryScope": "COLLECTION",
                           "fields": [{"fieldPath": "owner", "order": "ASCENDING"},
                                      {"fieldPath": "created_at", "order": "DESCENDING"}]}]


def test_the_study_listings_have_their_composite_indexes_and_no_image_is_indexed():
    spec = json.loads((REPO / "firestore.indexes.json").read_text())
    studies = [[(f["fieldPath"], f["order"]) for f in index["fields"]] for index in spec["indexes"]
               if index["collectionGroup"] == "analyses-studies"]
    created = ("created_at", "DESCENDING")
    assert [("owner", "ASCENDING"), created] in studies and [("study_uid", "ASCENDING"), created] in studies
    assert [("owner", "ASCENDING"), ("study_uid", "ASCENDING"), created] in studies
    exempt = {o["fieldPath"] for o in spec["fieldOverrides"]
              if o["collectionGroup"] == "analyses-studies" and o["indexes"] == []}
    assert {"key_slices", "slice_table"} <= exempt
