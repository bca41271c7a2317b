"""GET /openapi.json: the API described in OpenAPI 3.1, for clients, code generators and docs.

Every error response is made from the error catalogue (`backend/errors.py`): a route names the codes it
can answer, and each status lists them with when they happen. tests/test_openapi.py validates real
responses of every route against this document, and Schemathesis (tests/test_schemathesis.py) checks
that the service does what it says, so it cannot drift from the code.
"""

from flask import Blueprint, jsonify

from backend.api.web import FRONTEND_DIR
from backend.errors import CATALOGUE

bp = Blueprint("openapi", __name__)

REQUEST_ID = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}
# Headers some errors carry, by status: who must sign in, and when to try again.
ERROR_HEADERS = {
    401: {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "required": True,
            "description": "Bearer, with the reason (RFC 6750)",
        }
    },
    429: {
        "Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}, "required": True, "description": "seconds"}
    },
    503: {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}, "description": "seconds, with `busy`"}},
}


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


# A listing's page: its size and where the previous page ended (analyses and studies alike).
PAGE_PARAMETERS = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
    {
        "name": "cursor",
        "in": "query",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{0,200}$"},
        "description": "next_cursor of the previous page (opaque: any other value answers invalid_cursor); "
        "empty: the first page",
    },
]


def _kept_object(media_types: list, description: str, what: str) -> dict:
    """The 200 and 304 answers of a kept object's route: its bytes with a strong ETag, cached for good."""
    return {
        "200": {
            **_other(media_types, description, {"type": "string", "contentEncoding": "binary"}),
            "headers": {
                **REQUEST_ID,
                "ETag": {"schema": {"type": "string"}, "required": True, "description": f"the {what}'s sha256, quoted"},
                "Cache-Control": {"schema": {"const": "private, max-age=31536000, immutable"}, "required": True},
            },
        },
        "304": {
            "description": f"Not modified: If-None-Match named this {what}'s ETag.",
            "headers": {"ETag": {"schema": {"type": "string"}, "required": True}},
        },
    }


def _page(item_schema: str, links: dict) -> dict:
    """A listing's 200: one page of `item_schema` items and the next page's cursor (null on the last)."""
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": _ref(item_schema)},
            "next_cursor": {"type": ["string", "null"]},
        },
    }
    return _json(schema, "A page.", links)


def _json(schema, description, links=None):
    response = {
        "description": description,
        "headers": dict(REQUEST_ID),
        "content": {"application/json": {"schema": schema}},
    }
    if links:
        response["links"] = links
    return response


def errors(*codes) -> dict:
    """The error responses of a route that can answer `codes`: one per status, its `error` one of them."""
    by_status = {}
    for code in codes:
        by_status.setdefault(CATALOGUE[code].status, []).append(code)
    return {
        str(status): {
            "description": "; ".join(f"`{code}`: {CATALOGUE[code].when}" for code in group),
            "headers": {**REQUEST_ID, **ERROR_HEADERS.get(status, {})},
            "content": {
                "application/json": {"schema": {"allOf": [_ref("Error")], "properties": {"error": {"enum": group}}}}
            },
        }
        for status, group in sorted(by_status.items())
    }


def _other(mimetypes, description, schema=None):
    """A non-JSON response (HTML, JavaScript, Prometheus text) in any of `mimetypes`."""
    return {
        "description": description,
        "headers": dict(REQUEST_ID),
        "content": {m: {"schema": schema or {"type": "string"}} for m in mimetypes},
    }


# Codes by what a route does. Every route may fail unexpectedly (internal_error).
SIGNED_IN = (
    "sign_in_required",
    "invalid_token",
    "token_expired",
    "token_revoked",
    "user_disabled",
    "auth_unavailable",
    "internal_error",
)
CHANGES = ("cross_origin_refused",)  # a POST or DELETE from another site's page (AUTH_MODE=none)
STORED = ("store_unavailable",)
IMAGES = ("image_store_unavailable",)
IMAGE_CONTENT = (
    "corrupt_image",
    "invalid_dicom",
    "no_pixel_data",
    "invalid_dicom_header",
    "undecodable_dicom",
    "too_many_pixels",
    "decoded_too_large",
    "unsupported_format",
    "unsupported_transfer_syntax",
    "image_too_small",
    "blank_image",
    "invalid_frame",
)
ANALYSING = ("rate_limited", "busy", "invalid_idempotency_key", "idempotency_key_reused")
UPLOAD = (
    "bad_request",
    "missing_file",
    "missing_image",
    "invalid_json",
    "invalid_field",
    "invalid_base64",
    "invalid_data_url",
    "empty_file",
    "too_many_form_fields",
    "invalid_window",
    "request_entity_too_large",
)

JPEG_DATA_URL = {
    "type": "string",
    "pattern": "^data:image/jpeg;base64,[A-Za-z0-9+/]+={0,2}$",
    "contentMediaType": "image/jpeg",
}
ANALYSIS_TEXT = {
    "id": {"type": "string", "description": "the analysis id"},
    "owner": {"type": "string", "description": "the uid of the user whose analysis it is ('local' in AUTH_MODE=none)"},
    "created_at": {"type": "string", "format": "date-time", "description": "ISO 8601 UTC, set by the service"},
    "filename": {"type": "string", "maxLength": 255, "description": "the uploaded file's base name"},
    "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "fingerprint of the upload as sent"},
    "prediction": _ref("Prediction"),
    "findings": {"type": "array", "items": {"type": "string"}},
    "recommendations": {"type": "array", "items": {"type": "string"}},
    "model": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "version"],
        "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
    },
}
IMAGE_ENTRY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "path", "content_type", "size", "sha256"],
    "properties": {
        "name": {"enum": ["slice.jpg", "heatmap.jpg", "original"]},
        "path": {"type": "string", "description": "analyses/<owner>/<id>/<name> in IMAGE_STORE"},
        "content_type": {"type": "string"},
        "size": {"type": "integer", "minimum": 0, "description": "bytes"},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "also the ETag"},
        "width": {"type": "integer", "minimum": 1, "description": "JPEGs only"},
        "height": {"type": "integer", "minimum": 1, "description": "JPEGs only"},
    },
}
# Fields that analyses stored before full-size images were kept do not have.
ANALYSIS_EXTRA = {
    "images": {
        "type": "array",
        "items": IMAGE_ENTRY,
        "description": "the objects kept for this analysis (absent with IMAGE_STORE=none and in older "
        "analyses): GET /analyses/{id}/images/{name}",
    },
    "parameters": {
        "type": "object",
        "additionalProperties": False,
        "required": ["window", "frame"],
        "properties": {"window": _ref("Window"), "frame": {"type": ["integer", "null"]}},
        "description": "the request's window and frame, which a re-analysis repeats",
    },
    "reanalysis_of": {"type": "string", "description": "the analysis whose stored original this one re-ran"},
}
FRAME = "0-based frame of a multi-frame DICOM; default the middle one"
ANALYSIS_ID = {"name": "analysis_id", "in": "path", "required": True, "schema": {"type": "string"}}
STUDY_ID = {"name": "study_id", "in": "path", "required": True, "schema": {"type": "string"}}
# A study's id, wherever a response carries one, leads to the routes that take it.
STUDY_LINKS = {
    "GetStudy": {"operationId": "getStudy", "parameters": {"study_id": "$response.body#/id"}},
    "GetStudySlice": {"operationId": "getStudySlice", "parameters": {"study_id": "$response.body#/id"}},
    "ReanalyzeStudy": {"operationId": "reanalyzeStudy", "parameters": {"study_id": "$response.body#/id"}},
    "DeleteStudy": {"operationId": "deleteStudy", "parameters": {"study_id": "$response.body#/id"}},
}
LISTED_STUDY_LINKS = {
    name: {**link, "parameters": {"study_id": "$response.body#/items/0/id"}} for name, link in STUDY_LINKS.items()
}
LISTED_STUDY_LINKS["NextPage"] = {"operationId": "listStudies", "parameters": {"cursor": "$response.body#/next_cursor"}}
# What a study upload (or a re-analysis of its kept files) can be refused for.
STUDY_UPLOAD = (
    "bad_request",
    "missing_file",
    "invalid_window",
    "invalid_series_uid",
    "invalid_archive",
    "study_too_large",
)
STUDY_CONTENT = ("too_many_slices", "no_dicom", "unknown_series", "not_ct", "mixed_slice_sizes", "unordered_series")
NUMBER_0_1 = {"type": "number", "minimum": 0, "maximum": 1}
BINARY_FILE = {"type": "string", "contentMediaType": "application/octet-stream"}
STUDY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "description": "the study id"},
        "owner": ANALYSIS_TEXT["owner"],
        "created_at": ANALYSIS_TEXT["created_at"],
        "started_at": {"type": "string", "format": "date-time", "description": "when a worker last claimed it"},
        "finished_at": {"type": "string", "format": "date-time"},
        "status": {"enum": ["queued", "running", "done", "failed"]},
        "progress": {
            "type": "object",
            "additionalProperties": False,
            "required": ["done", "total"],
            "properties": {"done": {"type": "integer", "minimum": 0}, "total": {"type": "integer", "minimum": 1}},
            "description": "slices analysed so far, of the series' slices",
        },
        "error": {
            "type": "object",
            "required": ["error", "message"],
            "additionalProperties": False,
            "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
            "description": "why it failed (status failed): a catalogue code and its sentence",
        },
        "filename": {"type": "string", "description": "the ZIP's name, the folder the files share, or 'N files'"},
        "study_uid": {"type": "string", "description": "StudyInstanceUID (empty when the files have none)"},
        "series_uid": {"type": "string", "description": "SeriesInstanceUID of the series analysed"},
        "series_description": {"type": "string"},
        "modality": {"type": "string"},
        "slice_count": {"type": "integer", "minimum": 1},
        "ordered_by": {
            "enum": ["position", "slice_location", "instance_number"],
            "description": "ImagePositionPatient along the slice normal, SliceLocation, or InstanceNumber",
        },
        "parameters": {
            "type": "object",
            "additionalProperties": False,
            "required": ["window"],
            "properties": {"window": _ref("Window")},
        },
        "model": ANALYSIS_TEXT["model"],
        "skipped_series": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["series_uid", "modality", "slices", "reason"],
                "properties": {
                    "series_uid": {"type": "string"},
                    "modality": {"type": "string"},
                    "slices": {"type": "integer"},
                    "reason": {"type": "string"},
                },
            },
        },
        "skipped_files": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "reason"],
                "properties": {"name": {"type": "string"}, "reason": {"type": "string"}},
            },
            "description": "files of the upload left out (not DICOM, unsafe names, links, nested archives): the "
            "first 50",
        },
        "skipped_file_count": {"type": "integer", "minimum": 0},
        "reanalysis_of": {"type": "string", "description": "the study whose kept DICOM files this one re-ran"},
        "prediction": {
            "type": "object",
            "additionalProperties": False,
            "required": ["label", "score", "threshold", "assessable_slices", "aggregation"],
            "properties": {
                "label": {"enum": ["COVID", "NonCOVID"], "description": "COVID when score >= threshold"},
                "score": {**NUMBER_0_1, "description": "the study's P(COVID)"},
                "threshold": NUMBER_0_1,
                "assessable_slices": {"type": "integer", "minimum": 0},
                "aggregation": {"type": "string", "description": "the rule, in words"},
            },
        },
        "slices": {
            "type": "array",
            "description": "every slice, in position order (done studies)",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["index", "instance_number", "sop_instance_uid", "z", "probability", "label", "assessable"],
                "properties": {
                    "index": {"type": "integer", "minimum": 0},
                    "instance_number": {"type": ["integer", "null"]},
                    "sop_instance_uid": {"type": "string", "description": "empty when the file has none"},
                    "z": {"type": ["number", "null"], "description": "position along the slice normal, mm"},
                    "probability": {
                        "anyOf": [NUMBER_0_1, {"type": "null"}],
                        "description": "calibrated P(COVID); null when it could not be decoded",
                    },
                    "label": {"type": ["string", "null"]},
                    "assessable": {
                        "type": "boolean",
                        "description": "the model rated the slice (prediction.assessable)",
                    },
                    "counted": {
                        "type": "boolean",
                        "description": "counts toward the study answer: assessable, and at least half the lung area "
                        "of the series' fullest slice (absent in studies made before 3.0.0's aggregation)",
                    },
                    "reason": {
                        "enum": ["no_lung_field", "not_chest_ct", "low_resolution"],
                        "description": "why the slice is not assessable (absent when it is)",
                    },
                    "error": {"type": "string", "description": "why the slice could not be decoded"},
                },
            },
        },
        "key_slices": {
            "type": "array",
            "maxItems": 8,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["index", "probability", "file_thumbnail", "heatmap_thumbnail"],
                "properties": {
                    "index": {"type": "integer", "minimum": 0},
                    "probability": NUMBER_0_1,
                    "file_thumbnail": {"anyOf": [JPEG_DATA_URL, {"const": ""}]},
                    "heatmap_thumbnail": {"anyOf": [JPEG_DATA_URL, {"const": ""}]},
                },
            },
            "description": "the slices that drive the answer, highest first: 200 px JPEG-50 data URLs",
        },
        "findings": {"type": "array", "items": {"type": "string"}},
        "recommendations": {"type": "array", "items": {"type": "string"}},
        "dicom_results": {
            "type": "object",
            "additionalProperties": False,
            "required": ["sr", "key_images"],
            "properties": {"sr": {"type": "string"}, "key_images": {"type": "array", "items": {"type": "string"}}},
            "description": "SOP Instance UIDs of the answer as DICOM (done studies): the Structured "
            "Report and the key images' Secondary Capture instances, served under "
            "/studies/{id}/dicom/",
        },
        "results_delivery": {
            "type": "object",
            "additionalProperties": False,
            "required": ["state", "to", "error"],
            "properties": {
                "state": {"enum": ["pending", "sent", "failed"]},
                "to": {"type": "string", "description": "DICOM_RESULTS_TO, without any password"},
                "error": {
                    "type": ["string", "null"],
                    "description": "why it failed; while pending, what the last attempt met (null before one)",
                },
                "attempts": {"type": "integer", "minimum": 0, "description": "attempts made so far"},
            },
            "description": "sending the DICOM results to DICOM_RESULTS_TO (absent when it is empty); pending "
            "between attempts too, which follow each other after 1, 2, 4 ... at most 30 s",
        },
        "source": {
            "type": "object",
            "additionalProperties": False,
            "required": ["protocol"],
            "properties": {
                "protocol": {"enum": ["C-STORE", "STOW-RS"]},
                "calling_ae": {"type": "string", "description": "the sender's AE title (C-STORE)"},
            },
            "description": "how the series came from a DICOM node (absent for uploads)",
        },
    },
    "required": [
        "id",
        "owner",
        "created_at",
        "status",
        "progress",
        "filename",
        "study_uid",
        "series_uid",
        "series_description",
        "modality",
        "slice_count",
        "parameters",
        "model",
        "skipped_series",
    ],
}
STORE_INSTANCES_RESPONSE = {
    "type": "object",
    "description": "the Store Instances Response in DICOM JSON: "
    "ReferencedSOPSequence (00081199) for the instances taken, FailedSOPSequence (00081198) "
    "with a FailureReason (00081197) for the others",
}
STOW_RS = {
    "operationId": "storeInstances",
    "summary": "STOW-RS: store CT instances (DICOMweb); each series received becomes a study of the caller's, as "
    "POST /studies makes one",
    "requestBody": {
        "required": True,
        "content": {
            "multipart/related": {
                "schema": {
                    "type": "string",
                    "contentEncoding": "binary",
                    "description": 'type="application/dicom": one DICOM file in each part',
                }
            }
        },
    },
    "responses": {
        **{
            str(status): {
                "description": description,
                "headers": {
                    **REQUEST_ID,
                    "X-Study-ID": {
                        "schema": {"type": "string"},
                        "required": status != 409,
                        "description": "the ids of the studies made, comma-separated",
                    },
                },
                "content": {"application/dicom+json": {"schema": STORE_INSTANCES_RESPONSE}},
            }
            for status, description in (
                (200, "Every instance was taken."),
                (202, "Some instances were taken, the others failed (each with its reason)."),
                (409, "No instance was taken (each failed with its reason)."),
            )
        },
        **errors(
            "unsupported_media_type",
            "invalid_multipart",
            "too_many_slices",
            "study_too_large",
            "rate_limited",
            *SIGNED_IN,
            *CHANGES,
            *STORED,
            *IMAGES,
            "studies_need_image_store",
            "queue_unavailable",
        ),
    },
}
# An analysis's id, wherever a response carries one, leads to the routes that take it.
ANALYSIS_LINKS = {
    "GetAnalysis": {"operationId": "getAnalysis", "parameters": {"analysis_id": "$response.body#/id"}},
    "GetImage": {"operationId": "getImage", "parameters": {"analysis_id": "$response.body#/id"}},
    "Reanalyze": {"operationId": "reanalyze", "parameters": {"analysis_id": "$response.body#/id"}},
    "DeleteAnalysis": {"operationId": "deleteAnalysis", "parameters": {"analysis_id": "$response.body#/id"}},
}
LISTED_LINKS = {
    name: {**link, "parameters": {"analysis_id": "$response.body#/items/0/id"}} for name, link in ANALYSIS_LINKS.items()
}
LISTED_LINKS["NextPage"] = {"operationId": "listAnalyses", "parameters": {"cursor": "$response.body#/next_cursor"}}
PRINTABLE = "^[ -~]{1,255}$"  # printable ASCII


def _idempotency_key(request):
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": f"The same key with the same request {request} answers with the stored analysis; "
        "stored once. 1 to 255 printable ASCII characters.",
        "schema": {"type": "string", "pattern": PRINTABLE},
    }


def _created(what):
    """201 of a new analysis; an Idempotency-Key replay answers the same way with the stored analysis."""
    return {
        **_json(
            {"oneOf": [_ref("Analysis"), _ref("StoredAnalysis")]},
            f"{what}; a replay of an Idempotency-Key answers with the stored analysis and Idempotent-Replayed: true.",
            ANALYSIS_LINKS,
        ),
        "headers": {
            **REQUEST_ID,
            "Location": {
                "schema": {"type": "string"},
                "required": True,
                "description": "/analyses/<id of the new analysis>",
            },
            "Idempotent-Replayed": {"schema": {"const": "true"}, "description": "present when this is a replay"},
        },
    }


def _static_files() -> list[str]:
    """The dashboard's files, as /static/{path} serves them."""
    return sorted(
        p.relative_to(FRONTEND_DIR).as_posix()
        for p in FRONTEND_DIR.rglob("*")
        if p.is_file() and p.name != "index.html"
    )


SPEC = {
    "openapi": "3.1.0",
    "info": {
        "title": "CT slice analysis",
        "version": "1.0.0",
        "description": "Classify one chest CT slice (PNG, JPEG or DICOM) as COVID or NonCOVID, with a class-"
        "activation heatmap, findings and recommendations, or a whole CT series as a study; keep a "
        "history of analyses and studies. Research "
        "use only. Every response carries X-Request-ID; every error is "
        '{"error": code, "message": sentence}. A method a route does not take answers 405 with '
        "Allow.",
    },
    "security": [{}, {"firebase": []}],
    "paths": {
        "/analyze": {
            "post": {
                "operationId": "analyze",
                "summary": "Analyse one slice and store the analysis",
                "parameters": [_idempotency_key("(file, window, frame, file name)")],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {
                                    "file": {
                                        "type": "string",
                                        "contentMediaType": "application/octet-stream",
                                        "description": "PNG, JPEG or DICOM bytes; the format is read from the bytes",
                                    },
                                    "window": _ref("Window"),
                                    "frame": {"type": "string", "pattern": "^[0-9]{1,20}$", "description": FRAME},
                                },
                            },
                        },
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["image"],
                                "properties": {
                                    "image": {
                                        "type": "string",
                                        "minLength": 1,
                                        "description": "a data URL (data:<type>;base64,...) or bare base64 of PNG, "
                                        "JPEG or DICOM bytes",
                                    },
                                    "filename": {"type": "string"},
                                    "window": _ref("Window"),
                                    "frame": {"type": "integer", "minimum": 0, "description": FRAME},
                                },
                            },
                        },
                    },
                },
                "responses": {
                    "201": _created("The analysis (also stored)"),
                    **errors(*UPLOAD, *IMAGE_CONTENT, *ANALYSING, *SIGNED_IN, *CHANGES, *STORED, *IMAGES),
                },
            }
        },
        "/analyses": {
            "get": {
                "operationId": "listAnalyses",
                "summary": "The caller's stored analyses, newest first",
                "parameters": [
                    {
                        "name": "owner",
                        "in": "query",
                        "schema": {"const": "all"},
                        "description": "everyone's analyses (the admin claim only)",
                    },
                    *PAGE_PARAMETERS,
                ],
                "responses": {
                    "200": _page("StoredAnalysis", LISTED_LINKS),
                    **errors("invalid_limit", "invalid_cursor", "invalid_owner", "forbidden", *SIGNED_IN, *STORED),
                },
            }
        },
        "/analyses/{analysis_id}": {
            "get": {
                "operationId": "getAnalysis",
                "summary": "One stored analysis",
                "parameters": [ANALYSIS_ID],
                "responses": {
                    "200": _json(_ref("StoredAnalysis"), "The stored analysis.", ANALYSIS_LINKS),
                    **errors("not_found", *SIGNED_IN, *STORED),
                },
            },
            "delete": {
                "operationId": "deleteAnalysis",
                "summary": "Delete one stored analysis: its images, then its document",
                "parameters": [ANALYSIS_ID],
                "responses": {
                    "204": {"description": "Deleted, images and document.", "headers": dict(REQUEST_ID)},
                    **errors("not_found", *SIGNED_IN, *CHANGES, *STORED, *IMAGES),
                },
            },
        },
        "/analyses/{analysis_id}/images/{name}": {
            "get": {
                "operationId": "getImage",
                "summary": "One kept image of an analysis: the 400 px slice or heatmap JPEG, or the original upload",
                "parameters": [
                    ANALYSIS_ID,
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"enum": ["slice.jpg", "heatmap.jpg", "original"]},
                    },
                    {
                        "name": "If-None-Match",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "the ETag the caller has",
                    },
                ],
                "responses": {
                    **_kept_object(
                        ["image/jpeg", "image/png", "application/dicom", "application/octet-stream"],
                        "The object as stored (the original with the type sniffed from its bytes).",
                        "object",
                    ),
                    **errors("not_found", "image_missing", *SIGNED_IN, *STORED, *IMAGES),
                },
            }
        },
        "/analyses/{analysis_id}/reanalyze": {
            "post": {
                "operationId": "reanalyze",
                "summary": "Run the current model on an analysis's stored original, with its window and frame",
                "parameters": [ANALYSIS_ID, _idempotency_key("(the same analysis id)")],
                "responses": {
                    "201": _created("The new analysis (also stored), with reanalysis_of"),
                    **errors(
                        "not_found", "image_missing", *IMAGE_CONTENT, *ANALYSING, *SIGNED_IN, *CHANGES, *STORED, *IMAGES
                    ),
                },
            }
        },
        "/studies": {
            "post": {
                "operationId": "createStudy",
                "summary": "Upload a series (a ZIP, or the DICOM files) as a study; it is analysed in the background",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {
                                    "file": {
                                        "oneOf": [BINARY_FILE, {"type": "array", "items": BINARY_FILE}],
                                        "description": "one ZIP of DICOM files, or the DICOM files "
                                        "(the field repeated)",
                                    },
                                    "window": _ref("Window"),
                                    "series_uid": {
                                        "type": "string",
                                        "maxLength": 64,
                                        "description": "the series to analyse; empty: the CT series with the most "
                                        "slices",
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "202": {
                        **_json(_ref("Study"), "The study, queued (also stored).", STUDY_LINKS),
                        "headers": {
                            **REQUEST_ID,
                            "Location": {
                                "schema": {"type": "string"},
                                "required": True,
                                "description": "/studies/<id of the new study>",
                            },
                        },
                    },
                    **errors(
                        *STUDY_UPLOAD,
                        *STUDY_CONTENT,
                        "rate_limited",
                        *SIGNED_IN,
                        *CHANGES,
                        *STORED,
                        *IMAGES,
                        "studies_need_image_store",
                        "queue_unavailable",
                    ),
                },
            },
            "get": {
                "operationId": "listStudies",
                "summary": "The caller's studies, newest first (without their per-slice rows)",
                "parameters": [
                    {
                        "name": "owner",
                        "in": "query",
                        "schema": {"const": "all"},
                        "description": "everyone's studies (the admin claim only)",
                    },
                    {
                        "name": "study_uid",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "only the studies of this DICOM StudyInstanceUID; empty: all",
                    },
                    *PAGE_PARAMETERS,
                ],
                "responses": {
                    "200": _page("Study", LISTED_STUDY_LINKS),
                    **errors("invalid_limit", "invalid_cursor", "invalid_owner", "forbidden", *SIGNED_IN, *STORED),
                },
            },
        },
        "/studies/{study_id}": {
            "get": {
                "operationId": "getStudy",
                "summary": "One study: its progress, then its answer, slices and key slices",
                "parameters": [STUDY_ID],
                "responses": {
                    "200": _json(_ref("Study"), "The study.", STUDY_LINKS),
                    **errors("not_found", *SIGNED_IN, *STORED),
                },
            },
            "delete": {
                "operationId": "deleteStudy",
                "summary": "Delete a study (a running one is cancelled): its objects, then its document",
                "parameters": [STUDY_ID],
                "responses": {
                    "204": {
                        "description": "Deleted, objects and document; for a study of a series received by C-STORE, "
                        "also the copies the listener kept of that series once no other study of it is left.",
                        "headers": dict(REQUEST_ID),
                    },
                    **errors("not_found", *SIGNED_IN, *CHANGES, *STORED, *IMAGES),
                },
            },
        },
        "/studies/{study_id}/slices/{index}/{name}": {
            "get": {
                "operationId": "getStudySlice",
                "summary": "A slice of a done study: its 400 px JPEG (JPEG-70) or its heatmap overlay",
                "parameters": [
                    STUDY_ID,
                    {
                        "name": "index",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0, "maximum": 99999},
                        "description": "the slice's index",
                    },
                    {"name": "name", "in": "path", "required": True, "schema": {"enum": ["slice.jpg", "heatmap.jpg"]}},
                    {
                        "name": "If-None-Match",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "the ETag the caller has",
                    },
                ],
                "responses": {
                    **_kept_object(["image/jpeg"], "The image.", "image"),
                    **errors("not_found", "image_missing", "study_not_done", *SIGNED_IN, *STORED, *IMAGES),
                },
            }
        },
        "/dicomweb/studies": {"post": STOW_RS},
        "/dicomweb/studies/{study_uid}": {
            "post": {
                **STOW_RS,
                "operationId": "storeStudyInstances",
                "summary": STOW_RS["summary"] + "; instances of another study are refused (Failure Reason 0xC409)",
                "parameters": [
                    {"name": "study_uid", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
                ],
            }
        },
        "/studies/{study_id}/dicom/{name}": {
            "get": {
                "operationId": "getStudyDicomResults",
                "summary": "A done study's answer as DICOM, the instances sent to DICOM_RESULTS_TO: the Structured "
                "Report (sr.dcm) or a ZIP of the key images (key-images.zip)",
                "parameters": [
                    STUDY_ID,
                    {"name": "name", "in": "path", "required": True, "schema": {"enum": ["sr.dcm", "key-images.zip"]}},
                ],
                "responses": {
                    "200": _other(
                        ["application/dicom", "application/zip"],
                        "The SR, or the key images zipped.",
                        {"type": "string", "contentEncoding": "binary"},
                    ),
                    **errors("not_found", "no_dicom_results", "study_not_done", *SIGNED_IN, *STORED, *IMAGES),
                },
            }
        },
        "/studies/{study_id}/reanalyze": {
            "post": {
                "operationId": "reanalyzeStudy",
                "summary": "Run the current model on a study's kept DICOM files, with its window: a new study",
                "parameters": [STUDY_ID],
                "responses": {
                    "202": {
                        **_json(_ref("Study"), "The new study, queued, with reanalysis_of.", STUDY_LINKS),
                        "headers": {**REQUEST_ID, "Location": {"schema": {"type": "string"}, "required": True}},
                    },
                    **errors(
                        "not_found",
                        "image_missing",
                        *STUDY_CONTENT,
                        "invalid_window",
                        "rate_limited",
                        *SIGNED_IN,
                        *CHANGES,
                        *STORED,
                        *IMAGES,
                        "studies_need_image_store",
                        "queue_unavailable",
                    ),
                },
            }
        },
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness: the process answers (no dependency is checked)",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["status", "store", "model"],
                            "properties": {
                                "status": {"const": "ok"},
                                "store": {"type": "string"},
                                "model": ANALYSIS_TEXT["model"],
                            },
                        },
                        "Alive.",
                    )
                },
            }
        },
        "/ready": {
            "get": {
                "operationId": "ready",
                "summary": "Readiness: the model is loaded, the document store and the image store answer",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["status", "checks"],
                            "properties": {
                                "status": {"const": "ready"},
                                "checks": {"type": "object", "additionalProperties": {"const": "ok"}},
                            },
                        },
                        "Ready.",
                    ),
                    "503": _json(
                        {
                            "allOf": [_ref("Error")],
                            "required": ["not_ready"],
                            "properties": {
                                "error": {"const": "not_ready"},
                                "not_ready": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                    "description": "what is not ready (model, store, image_store) and why",
                                },
                            },
                        },
                        CATALOGUE["not_ready"].when,
                    ),
                },
            }
        },
        "/auth/config": {
            "get": {
                "operationId": "authConfig",
                "summary": "How the dashboard signs in: AUTH_MODE and the Firebase web config (public values)",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["mode"],
                            "properties": {
                                "mode": {"enum": ["none", "firebase"]},
                                "firebase": {
                                    "type": "object",
                                    "properties": {
                                        "apiKey": {"type": "string"},
                                        "authDomain": {"type": ["string", "null"]},
                                        "projectId": {"type": "string"},
                                    },
                                },
                                "emulator": {"type": ["string", "null"]},
                                "google_sign_in": {"type": "boolean"},
                            },
                        },
                        "The sign-in configuration.",
                    )
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (absent when METRICS=0)",
                "responses": {"200": _other(["text/plain"], "Prometheus text exposition format 0.0.4.")},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": _json({"type": "object", "required": ["openapi", "info", "paths"]}, "OpenAPI 3.1.")
                },
            }
        },
        "/": {
            "get": {
                "operationId": "dashboard",
                "summary": "The web dashboard",
                "responses": {"200": _other(["text/html"], "The dashboard page.")},
            }
        },
        "/static/{path}": {
            "get": {
                "operationId": "dashboardFile",
                "summary": "The dashboard's scripts, styles and icons",
                "parameters": [
                    {
                        "name": "path",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": _static_files()},
                        "description": "one of the dashboard's files; any other path answers not_found",
                    }
                ],
                "responses": {
                    "200": _other(["text/javascript", "text/css", "image/svg+xml", "text/html"], "A file."),
                    "304": {"description": "Not modified since the ETag or date the browser sent."},
                    **errors("not_found"),
                },
            }
        },
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {
                    "error": {"enum": sorted(CATALOGUE), "description": "a code of the catalogue (README: Errors)"},
                    "message": {"type": "string", "description": "a sentence for a person"},
                },
            },
            "Window": {
                "type": "string",
                "enum": ["lung", "mediastinal", "bone", "dicom"],
                "default": "lung",
                "description": "DICOM display window; PNG and JPEG ignore it",
            },
            "Prediction": {
                "type": "object",
                "additionalProperties": False,
                "required": [
                    "label",
                    "confidence",
                    "probabilities",
                    "threshold",
                    "in_distribution",
                    "distribution_score",
                ],
                "properties": {
                    "label": {
                        "type": "string",
                        "description": "COVID when probabilities.COVID >= threshold, else NonCOVID",
                    },
                    "threshold": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": 1,
                        "description": "the screening operating point on P(COVID)",
                    },
                    "in_distribution": {
                        "type": "boolean",
                        "description": "false when the image does not look like an axial chest CT slice",
                    },
                    "distribution_score": {"type": "number", "minimum": 0, "maximum": 1},
                    "assessable": {
                        "type": "boolean",
                        "description": "false when the model did not judge the slice: it "
                        "shows too little lung, is not chest CT, or shows the lungs too "
                        "few pixels across (`label` is "
                        "still given; the findings say it was not assessed); "
                        "absent in analyses stored before model 3",
                    },
                    "reason": {
                        "enum": ["no_lung_field", "not_chest_ct", "low_resolution", None],
                        "description": "why the slice was not assessed; null when it was",
                    },
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1, "description": "probabilities[label]"},
                    "probabilities": {
                        "type": "object",
                        "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1},
                        "description": "calibrated (temperature scaling); sum to 1",
                    },
                },
            },
            "Study": STUDY,
            "Analysis": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    **ANALYSIS_TEXT,
                    **ANALYSIS_EXTRA,
                    "file_url": {
                        **JPEG_DATA_URL,
                        "description": "the slice as the model saw it, longer side 400 px, JPEG quality 70",
                    },
                    "heatmap_url": {**JPEG_DATA_URL, "description": "the heatmap over the slice, 400 px, quality 70"},
                    "file_thumbnail": {**JPEG_DATA_URL, "description": "the slice, longer side 200 px, quality 50"},
                    "heatmap_thumbnail": {**JPEG_DATA_URL, "description": "the heatmap, 200 px, quality 50"},
                },
                "required": [*ANALYSIS_TEXT, "file_url", "heatmap_url", "file_thumbnail", "heatmap_thumbnail"],
            },
            "StoredAnalysis": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    **ANALYSIS_TEXT,
                    **ANALYSIS_EXTRA,
                    "file_thumbnail": {
                        "anyOf": [JPEG_DATA_URL, {"const": ""}],
                        "description": "the slice, at most 200 px (empty if it did not fit the budget)",
                    },
                    "heatmap_url": {
                        "anyOf": [JPEG_DATA_URL, {"const": ""}],
                        "description": "the heatmap thumbnail, at most 200 px",
                    },
                },
                "required": [*ANALYSIS_TEXT, "file_thumbnail", "heatmap_url"],
            },
        },
        "securitySchemes": {
            "firebase": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "Firebase ID token",
                "description": "AUTH_MODE=firebase; AUTH_MODE=none needs none",
            }
        },
        "headers": {
            "X-Request-ID": {
                "required": True,
                "schema": {"type": "string"},
                "description": "the caller's X-Request-ID if sane, else a new id",
            }
        },
        # Any value is accepted: one that is not 1 to 128 of these characters is replaced by a new id.
        "parameters": {
            "X-Request-ID": {
                "name": "X-Request-ID",
                "in": "header",
                "required": False,
                "schema": {},
                "description": "an id to follow this request through logs; kept when it "
                "is 1 to 128 characters of A-Z a-z 0-9 . _ : @ / + = -, "
                "else replaced by a new one",
            }
        },
    },
}

for _operation in (op for path in SPEC["paths"].values() for op in path.values()):
    _operation.setdefault("parameters", []).append({"$ref": "#/components/parameters/X-Request-ID"})


@bp.get("/openapi.json")
def openapi():
    return jsonify(SPEC)
