"""The real server on STORE=firestore against the emulator, checked by reading Firestore directly."""

import json
from datetime import datetime

import pytest
from google.api_core.exceptions import InvalidArgument
from google.cloud import firestore

from backend.store.docsize import FIRESTORE_MAX_DOC_BYTES, document_size
from tests.fixtures.data import dicom_file
from tests.fixtures.firestore_emulator import PROJECT
from tests.fixtures.http import multipart, request
from tests.fixtures.images import decode_data_url, longer_side
from tests.fixtures.server import running_server
from tests.test_firestore_limits import padded_to

pytestmark = pytest.mark.firestore

COLLECTION = "analyses"
DEFAULT_DOC_BUDGET_BYTES = 256 * 1024
# The IJG standard luminance table (natural order); libjpeg scales it by 100% at quality 50.
IJG_LUMINANCE_Q50 = [
    16,
    11,
    10,
    16,
    24,
    40,
    51,
    61,
    12,
    12,
    14,
    19,
    26,
    58,
    60,
    55,
    14,
    13,
    16,
    24,
    40,
    57,
    69,
    56,
    14,
    17,
    22,
    29,
    51,
    87,
    80,
    62,
    18,
    22,
    37,
    56,
    68,
    109,
    103,
    77,
    24,
    35,
    55,
    64,
    81,
    104,
    113,
    92,
    49,
    64,
    78,
    87,
    103,
    121,
    120,
    101,
    72,
    92,
    95,
    98,
    112,
    100,
    103,
    99,
]


@pytest.fixture
def firestore_client(firestore_env):
    client = firestore.Client(project=PROJECT)
    yield client
    client.close()


@pytest.fixture(scope="module")
def firestore_service(firestore_emulator, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("firestore-e2e") / "data"  # its image files: never the clone's own ./data
    with running_server({"STORE": "firestore", "DATA_DIR": str(data_dir), **firestore_emulator.env()}) as base_url:
        yield base_url


@pytest.fixture
def server(firestore_service, firestore_env):
    """The module's server, with the emulator emptied for this test."""
    return firestore_service


def test_an_analysis_lands_in_firestore_once_with_small_thumbnails(server, firestore_client):
    body, headers = multipart("file", "693_UNCR.dcm", dicom_file("693_UNCR.dcm").read_bytes())
    headers["Idempotency-Key"] = "e2e-upload-1"
    first_status, _, first = request("POST", server + "/analyze", body, headers)
    retry_status, retry_headers, retry = request("POST", server + "/analyze", body, headers)
    assert first_status == retry_status == 201
    first, retry = json.loads(first), json.loads(retry)
    assert retry["id"] == first["id"] and retry["created_at"] == first["created_at"]
    assert retry_headers["Idempotent-Replayed"] == "true"

    snapshots = list(firestore_client.collection(COLLECTION).stream())
    assert [s.id for s in snapshots] == [first["id"]]  # one document for two requests
    stored = snapshots[0].to_dict()

    assert isinstance(stored["created_at"], datetime)  # a Firestore timestamp, the listing's sort key
    assert stored["created_at"] == datetime.fromisoformat(first["created_at"])
    expected = {k: v for k, v in first.items() if k not in ("file_url", "heatmap_thumbnail", "created_at")}
    assert {k: v for k, v in stored.items() if k != "created_at"} == {
        **expected,
        "heatmap_url": first["heatmap_thumbnail"],
    }

    for field in ("file_thumbnail", "heatmap_url"):
        image = decode_data_url(stored[field])
        assert longer_side(image) == 200, field
        assert list(image.quantization[0]) == IJG_LUMINANCE_Q50, field

    assert_firestore_counts(firestore_client, first["id"], stored)


def assert_firestore_counts(client, analysis_id, stored):
    """document_size of the real document is Firestore's: padded to the limit it fits, one byte more not."""
    assert document_size(COLLECTION, analysis_id, stored) <= DEFAULT_DOC_BUDGET_BYTES
    collection = client.collection(COLLECTION)
    collection.document("0" * len(analysis_id)).create(
        padded_to(FIRESTORE_MAX_DOC_BYTES, "0" * len(analysis_id), stored)
    )
    with pytest.raises(InvalidArgument):
        collection.document("1" * len(analysis_id)).create(
            padded_to(FIRESTORE_MAX_DOC_BYTES + 1, "1" * len(analysis_id), stored)
        )


def test_get_list_and_delete_through_the_api(server, firestore_client):
    body, headers = multipart("file", "693_UNCR.dcm", dicom_file("693_UNCR.dcm").read_bytes())
    status, _, raw = request("POST", server + "/analyze", body, headers)
    assert status == 201
    created = json.loads(raw)
    location = f"{server}/analyses/{created['id']}"

    status, _, raw = request("GET", location)
    assert status == 200 and json.loads(raw)["created_at"] == created["created_at"]
    status, _, raw = request("GET", server + "/analyses")
    assert [item["id"] for item in json.loads(raw)["items"]] == [created["id"]]

    assert request("DELETE", location)[0] == 204
    assert request("DELETE", location)[0] == 404
    assert not firestore_client.collection(COLLECTION).document(created["id"]).get().exists
