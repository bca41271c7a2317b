"""The response and the stored document of one analysis, the stored one kept under a size budget.

The stored document holds every response field except `file_url` and `heatmap_thumbnail`; its
`heatmap_url` is the 200 px thumbnail (the established contract). No image over 200 px is stored.
"""

from datetime import UTC, datetime

from backend.store.docsize import stored_document_size
from backend.utils.helpers import create_thumbnail

# If a document would exceed its budget, thumbnails are re-made from pixels at these settings in turn.
SHRINK_STEPS = [((200, 200), 40), ((200, 200), 30), ((160, 160), 30), ((120, 120), 25), ((80, 80), 20)]


def new_fields(
    analysis_id: str, owner: str, filename: str, sha256: str, result, classifier, window="lung", frame=None
) -> dict:
    """The text fields of a new analysis (`result` a SliceAnalysis), as the API and the batch command store them.

    `parameters` are the request's window and frame, so a re-analysis repeats them.
    """
    return {
        "id": analysis_id,
        "owner": owner,
        "created_at": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "filename": filename,
        "sha256": sha256,
        "prediction": result.prediction.as_json(),
        "findings": result.findings,
        "recommendations": result.recommendations,
        "model": {"name": classifier.name, "version": classifier.version},
        "parameters": {"window": window, "frame": frame},
    }


def build(fields: dict, images: dict) -> tuple[dict, dict]:
    """(response, stored) from the analysis fields and the four rendered data URLs."""
    response = {**fields, **images}
    stored = {**fields, "file_thumbnail": images["file_thumbnail"], "heatmap_url": images["heatmap_thumbnail"]}
    return response, stored


def fit_to_budget(stored: dict, slice_pixels, heatmap_pixels, collection: str, budget: int) -> dict:
    """Shrink the stored thumbnails, from the in-memory pixels, until the document fits `budget` bytes."""
    for size, quality in SHRINK_STEPS:
        if stored_document_size(collection, stored) <= budget:
            break
        stored = {
            **stored,
            "file_thumbnail": create_thumbnail(slice_pixels, size, quality),
            "heatmap_url": create_thumbnail(heatmap_pixels, size, quality),
        }
    if stored_document_size(collection, stored) > budget:
        stored = {**stored, "file_thumbnail": "", "heatmap_url": ""}  # text alone fits: a write never fails for size
    return stored
