"""The stored document stays under its size budget, computed by Firestore's own rules."""

import numpy as np

from backend.analysis.document import fit_to_budget
from backend.store.docsize import document_size, stored_document_size
from backend.utils.helpers import create_thumbnail
from tests.fixtures.images import decode_data_url, longer_side


def noisy(shape):
    return np.random.default_rng(1).integers(0, 255, shape, np.uint8)  # incompressible: big JPEGs


def stored_doc(slice_pixels, heatmap_pixels):
    return {
        "id": "a" * 32,
        "created_at": "2026-11-24T10:00:00.000000Z",
        "filename": "x.png",
        "file_thumbnail": create_thumbnail(slice_pixels),
        "heatmap_url": create_thumbnail(heatmap_pixels),
    }


def test_size_rules():
    assert document_size("analyses", "abc", {}) == 9 + 4 + 16 + 32
    assert document_size(
        "analyses", "abc", {"s": "héllo", "n": 1, "f": 0.5, "b": True, "z": None, "l": ["ab", 2], "m": {"k": "v"}}
    ) == (61 + (2 + 7) + (2 + 8) + (2 + 8) + (2 + 1) + (2 + 1) + (2 + 3 + 8) + (2 + 2 + 2))


def test_a_document_within_budget_is_unchanged():
    doc = stored_doc(noisy((400, 400)), noisy((400, 400, 3)))
    assert fit_to_budget(doc, noisy((400, 400)), noisy((400, 400, 3)), "analyses", 256 * 1024) == doc


def test_an_oversized_document_gets_smaller_thumbnails_from_pixels():
    slice_pixels, heatmap_pixels = noisy((400, 400)), noisy((400, 400, 3))
    doc = stored_doc(slice_pixels, heatmap_pixels)
    budget = stored_document_size("analyses", doc) // 2
    fitted = fit_to_budget(doc, slice_pixels, heatmap_pixels, "analyses", budget)
    assert stored_document_size("analyses", fitted) <= budget
    assert fitted["filename"] == doc["filename"]
    for field in ("file_thumbnail", "heatmap_url"):
        assert fitted[field] != doc[field] and longer_side(decode_data_url(fitted[field])) <= 200
