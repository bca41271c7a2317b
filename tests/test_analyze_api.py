"""POST /analyze through Flask's test client: the response, the stored document, bad input."""

import base64
import io
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import Image

from backend.analysis.findings import LOW_RESOLUTION
from backend.imaging.decode import decode_image
from tests.fixtures.data import covid_ct_image, ct_series, dicom_file
from tests.fixtures.images import decode_data_url, jpeg_quality, longer_side
from tests.fixtures.uploads import ct_slice, encode

STORED_FIELDS = {
    "id",
    "owner",
    "created_at",
    "filename",
    "sha256",
    "prediction",
    "findings",
    "recommendations",
    "model",
    "parameters",
    "images",
    "file_thumbnail",
    "heatmap_url",
}


def post_file(client, data, filename="slice.dcm", **form):
    return client.post("/analyze", data={"file": (io.BytesIO(data), filename), **form})


def test_dicom_upload_answers_201_with_the_full_response(client):
    response = post_file(client, dicom_file("693_UNCR.dcm").read_bytes(), "693_UNCR.dcm")
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/analyses/{body['id']}"
    assert body["filename"] == "693_UNCR.dcm"

    prediction = body["prediction"]
    assert set(prediction["probabilities"]) == {"COVID", "NonCOVID"}
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-9)
    assert prediction["confidence"] == prediction["probabilities"][prediction["label"]]
    covid = prediction["probabilities"]["COVID"] >= prediction["threshold"]  # the screening operating point
    assert prediction["label"] == ("COVID" if covid else "NonCOVID")
    assert isinstance(prediction["in_distribution"], bool) and 0 <= prediction["distribution_score"] <= 1

    created = datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))
    assert body["created_at"].endswith("Z") and abs(datetime.now(UTC) - created).total_seconds() < 60
    assert body["model"]["name"] and body["model"]["version"]
    assert any("research use only" in line.lower() for line in body["recommendations"])


def test_images_have_the_promised_size_and_quality(client):
    body = post_file(client, dicom_file("693_UNCR.dcm").read_bytes()).get_json()
    for field, side, quality in [
        ("file_url", 400, 70),
        ("heatmap_url", 400, 70),
        ("file_thumbnail", 200, 50),
        ("heatmap_thumbnail", 200, 50),
    ]:
        image = decode_data_url(body[field])
        assert (image.size, jpeg_quality(image)) == ((side, side), quality), field
    assert decode_data_url(body["file_url"]).mode == "L"  # the slice as the model saw it: grayscale
    assert decode_data_url(body["heatmap_url"]).mode == "RGB"


def test_the_slice_returned_is_the_decoded_slice(client):
    body = post_file(client, dicom_file("693_UNCR.dcm").read_bytes()).get_json()
    returned = np.asarray(decode_data_url(body["file_url"])).astype(int)
    expected = np.asarray(Image.fromarray(ct_slice()).resize((400, 400), Image.Resampling.LANCZOS)).astype(int)
    assert np.abs(returned - expected).mean() < 3  # only JPEG quality-70 loss


def test_aspect_ratio_is_kept_and_small_slices_scaled_up(client):
    wide = Image.fromarray(ct_slice()[100:300, :])  # 512 x 200
    body = post_file(client, encode(wide.resize((256, 100)), "PNG"), "small.png").get_json()
    assert decode_data_url(body["file_url"]).size == (400, 156)
    assert decode_data_url(body["heatmap_url"]).size == (400, 156)
    assert decode_data_url(body["file_thumbnail"]).size == (200, 78)


def test_a_thumbnail_is_answered_but_not_judged(client):
    """A real hospital slice as a 96 px thumbnail (its lungs under the resolution floor): 201, `assessable` false with
    reason `low_resolution`, findings and recommendations that say so; the same slice at full size is judged."""
    slice_ = Image.fromarray(decode_image(ct_series()[15].read_bytes()))
    thumbnail = post_file(client, encode(slice_.resize((96, 96), Image.Resampling.BOX), "PNG"), "thumbnail.png")
    assert thumbnail.status_code == 201, thumbnail.get_data(as_text=True)
    body = thumbnail.get_json()
    assert body["prediction"]["assessable"] is False and body["prediction"]["reason"] == "low_resolution"
    assert body["findings"][1:] == [LOW_RESOLUTION] and body["recommendations"][0] == LOW_RESOLUTION
    assert client.get(f"/analyses/{body['id']}").get_json()["prediction"]["reason"] == "low_resolution"
    full = post_file(client, encode(slice_, "PNG"), "full.png").get_json()
    assert full["prediction"]["assessable"] is True and full["prediction"]["reason"] is None


def test_real_dataset_slice(client):
    path = covid_ct_image("COVID", 0)
    body = post_file(client, path.read_bytes(), path.name).get_json()
    with Image.open(path) as original:
        width, height = original.size
    image = decode_data_url(body["file_url"])
    assert longer_side(image) == 400
    assert image.width / image.height == pytest.approx(width / height, rel=0.02)


def test_stored_document_holds_only_thumbnails(client):
    body = post_file(client, dicom_file("693_UNCR.dcm").read_bytes()).get_json()
    stored = client.get(f"/analyses/{body['id']}").get_json()
    assert set(stored) == STORED_FIELDS
    for field in (
        "id",
        "created_at",
        "filename",
        "prediction",
        "findings",
        "recommendations",
        "model",
        "parameters",
        "images",
        "file_thumbnail",
    ):
        assert stored[field] == body[field], field
    assert [entry["path"] for entry in stored["images"]] == [  # paths in the image store, never a URL
        f"analyses/local/{body['id']}/{name}" for name in ("slice.jpg", "heatmap.jpg", "original")
    ]
    assert stored["heatmap_url"] == body["heatmap_thumbnail"]
    for field in ("file_thumbnail", "heatmap_url"):
        image = decode_data_url(stored[field])
        assert (longer_side(image), jpeg_quality(image)) == (200, 50)


@pytest.mark.parametrize("prefix", ["data:application/dicom;base64,", ""])
def test_json_body_with_data_url_or_bare_base64(client, prefix):
    payload = prefix + base64.b64encode(dicom_file("693_UNCR.dcm").read_bytes()).decode()
    response = client.post("/analyze", json={"image": payload, "filename": "from-json.dcm"})
    assert response.status_code == 201
    assert response.get_json()["filename"] == "from-json.dcm"


def test_window_changes_the_slice(client):
    data = dicom_file("693_UNCR.dcm").read_bytes()
    lung = post_file(client, data).get_json()["file_url"]
    mediastinal = post_file(client, data, window="mediastinal").get_json()["file_url"]
    assert lung != mediastinal


def test_prediction_and_findings_follow_the_input(client):
    """Different slices get their own probabilities and their own findings, not canned text."""
    bodies = [
        post_file(client, dicom_file(name).read_bytes()).get_json() for name in ("693_UNCR.dcm", "bad_sequence.dcm")
    ]
    assert bodies[0]["prediction"]["probabilities"] != bodies[1]["prediction"]["probabilities"]
    assert bodies[0]["findings"] != bodies[1]["findings"]
    for body in bodies:
        confidence = body["prediction"]["confidence"]
        assert f"{body['prediction']['label']} with {confidence:.0%} confidence" in body["findings"][0]


def _assert_rejected(client, response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == code and len(body["message"]) > 10
    assert client.get("/analyses").get_json()["items"] == []
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize(
    "data, status, code",
    [
        (b"", 400, "empty_file"),
        (b"%PDF-1.7 not an image", 415, "unsupported_format"),
    ],
)
def test_bad_files_are_rejected_and_nothing_is_stored(client, data, status, code):
    _assert_rejected(client, post_file(client, data), status, code)


def test_truncated_and_pixelless_files(client):
    png = encode(Image.fromarray(ct_slice()), "PNG")
    _assert_rejected(client, post_file(client, png[:5000], "cut.png"), 400, "corrupt_image")
    _assert_rejected(client, post_file(client, dicom_file("rtplan.dcm").read_bytes()), 400, "no_pixel_data")


def test_missing_field_bad_json_and_bad_window(client):
    _assert_rejected(client, client.post("/analyze", data={"other": "x"}), 400, "missing_file")
    _assert_rejected(client, client.post("/analyze", json={"filename": "x"}), 400, "missing_image")
    _assert_rejected(client, client.post("/analyze", json={"image": "@@not base64@@"}), 400, "invalid_base64")
    data = dicom_file("693_UNCR.dcm").read_bytes()
    _assert_rejected(client, post_file(client, data, window="brain"), 400, "invalid_window")


def test_limits_on_bytes_and_pixels(tmp_path):
    from backend.app import create_app

    app = create_app({"DATA_DIR": str(tmp_path), "MAX_CONTENT_LENGTH": 100_000, "MAX_PIXELS": 256 * 256})
    client = app.test_client()
    _assert_rejected(client, post_file(client, bytes(200_000)), 413, "request_entity_too_large")
    jpeg = encode(Image.fromarray(ct_slice()), "JPEG")  # 512 x 512: over MAX_PIXELS, under the byte limit
    _assert_rejected(client, post_file(client, jpeg, "big.jpg"), 413, "too_many_pixels")


def test_idempotency_key_returns_the_same_analysis(client):
    data = dicom_file("693_UNCR.dcm").read_bytes()
    first = client.post(
        "/analyze", data={"file": (io.BytesIO(data), "a.dcm")}, headers={"Idempotency-Key": "upload-42"}
    )
    retry = client.post(
        "/analyze", data={"file": (io.BytesIO(data), "a.dcm")}, headers={"Idempotency-Key": "upload-42"}
    )
    assert first.status_code == retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert first.get_json()["id"] == retry.get_json()["id"]
    assert first.get_json()["created_at"] == retry.get_json()["created_at"]
    assert len(client.get("/analyses").get_json()["items"]) == 1

    other = dicom_file("bad_sequence.dcm").read_bytes()
    reused = client.post(
        "/analyze", data={"file": (io.BytesIO(other), "b.dcm")}, headers={"Idempotency-Key": "upload-42"}
    )
    assert reused.status_code == 422 and reused.get_json()["error"] == "idempotency_key_reused"
    assert len(client.get("/analyses").get_json()["items"]) == 1
