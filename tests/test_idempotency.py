"""Idempotency that means it (issue 10): one fingerprint per file whatever the upload method, the
stored analysis replayed for the same request, 422 for a different one, and random ids.
"""

import base64
import hashlib
import uuid

import pytest

from backend.app import create_app
from tests.fixtures.data import dicom_file
from tests.fixtures.hostile import assert_rejected, ct_png, multiframe_ct, post_file, stored_count

# The namespace the service once derived ids from (uuid5 of the key): ids must never be that again.
OLD_IDEMPOTENCY_NAMESPACE = uuid.UUID("8a7c1d5e-3f0b-4c58-9d3e-2b6f0c9a41e7")


def ct() -> bytes:
    return dicom_file("693_UNCR.dcm").read_bytes()


def keyed(client, data, key, filename="a.dcm", **form):
    return post_file(client, data, filename, headers={"Idempotency-Key": key}, **form)


def keyed_json(client, data, key, filename="a.dcm", **fields):
    body = {"image": base64.b64encode(data).decode(), "filename": filename, **fields}
    return client.post("/analyze", json=body, headers={"Idempotency-Key": key})


# --- The fingerprint --------------------------------------------------------------------------


def test_same_image_has_the_same_sha256_by_multipart_json_and_data_url(client):
    data = ct()
    multipart = post_file(client, data).get_json()
    bare = client.post("/analyze", json={"image": base64.b64encode(data).decode()}).get_json()
    data_url = client.post(
        "/analyze", json={"image": "data:application/dicom;base64," + base64.b64encode(data).decode()}
    ).get_json()
    expected = hashlib.sha256(data).hexdigest()
    assert multipart["sha256"] == bare["sha256"] == data_url["sha256"] == expected
    for body in (multipart, bare, data_url):
        assert client.get(f"/analyses/{body['id']}").get_json()["sha256"] == expected


# --- Same key, same request -------------------------------------------------------------------


def test_same_key_same_request_replays_the_stored_analysis(client):
    first = keyed(client, ct(), "upload-1", window="mediastinal")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    retry = keyed(client, ct(), "upload-1", window="mediastinal")
    assert retry.status_code == 201, retry.get_data(as_text=True)[:300]
    assert retry.headers["Idempotent-Replayed"] == "true"
    stored = client.get(f"/analyses/{first.get_json()['id']}").get_json()
    for field in ("id", "created_at", "prediction", "filename", "sha256", "findings"):
        assert retry.get_json()[field] == first.get_json()[field] == stored[field], field
    assert retry.headers["Location"] == first.headers["Location"]
    assert stored_count(client) == 1


def test_replay_by_the_other_upload_method(client):
    """The fingerprint is the file's bytes: the same file and fields sent as JSON is the same request."""
    first = keyed(client, ct(), "upload-2")
    retry = keyed_json(client, ct(), "upload-2")
    assert retry.status_code == 201, retry.get_data(as_text=True)[:300]
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json()["id"] == first.get_json()["id"]
    assert retry.get_json()["created_at"] == first.get_json()["created_at"]
    assert stored_count(client) == 1


def test_many_replays_store_one_document(client):
    ids = {keyed(client, ct(), "upload-3").get_json()["id"] for _ in range(5)}
    assert len(ids) == 1 and stored_count(client) == 1


# --- Same key, different request ------------------------------------------------------------


def _other_request(client, key, change):
    data, _ = multiframe_ct()
    if change == "file":
        return keyed(client, ct_png(), key, "a.dcm", frame="0")
    if change == "window":
        return keyed(client, data, key, "a.dcm", frame="0", window="bone")
    if change == "frame":
        return keyed(client, data, key, "a.dcm", frame="2")
    if change == "filename":
        return keyed(client, data, key, "b.dcm", frame="0")
    raise AssertionError(change)


@pytest.mark.parametrize("change", ["file", "window", "frame", "filename"])
def test_same_key_different_request_is_refused(client, change):
    data, _ = multiframe_ct()
    first = keyed(client, data, "upload-4", "a.dcm", frame="0")
    assert first.status_code == 201, first.get_data(as_text=True)[:300]
    assert_rejected(client, _other_request(client, "upload-4", change), 422, "idempotency_key_reused", stored_before=1)
    # the key still belongs to the first request
    again = keyed(client, data, "upload-4", "a.dcm", frame="0")
    assert again.status_code == 201 and again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"


def test_different_window_by_json_is_refused(client):
    first = keyed_json(client, ct(), "upload-5", window="lung")
    assert first.status_code == 201
    assert_rejected(
        client, keyed_json(client, ct(), "upload-5", window="bone"), 422, "idempotency_key_reused", stored_before=1
    )


@pytest.mark.parametrize("key", ["", "x" * 256, "cl\u00e9", "tab\there"])
def test_invalid_keys(client, key):
    response = post_file(client, ct(), headers={"Idempotency-Key": key})
    assert_rejected(client, response, 400, "invalid_idempotency_key")


# --- Ids --------------------------------------------------------------------------------------


def test_ids_are_random_uuid4_and_not_derived_from_the_key(client, tmp_path):
    first = keyed(client, ct(), "key-a").get_json()["id"]
    second = keyed(client, ct(), "key-b").get_json()["id"]
    assert first != second
    for analysis_id, key in ((first, "key-a"), (second, "key-b")):
        assert uuid.UUID(hex=analysis_id).version == 4 and len(analysis_id) == 32
        derived = {
            uuid.uuid5(namespace, key).hex
            for namespace in (OLD_IDEMPOTENCY_NAMESPACE, uuid.NAMESPACE_DNS, uuid.NAMESPACE_URL, uuid.NAMESPACE_OID)
        }
        derived |= {
            uuid.uuid3(uuid.NAMESPACE_URL, key).hex,
            hashlib.sha256(key.encode()).hexdigest()[:32],
            hashlib.md5(key.encode()).hexdigest(),
        }
        assert analysis_id not in derived
    # the same key on another installation gives another id: nothing about the id follows from the key
    other = create_app({"STORE": "sqlite", "DATA_DIR": str(tmp_path / "other"), "TESTING": True}).test_client()
    assert keyed(other, ct(), "key-a").get_json()["id"] != first
