"""Full-size images kept as objects (IMAGE_STORE=local): written with each analysis, served to its
owner with an ETag, removed with it, re-analysed from the stored original."""
import base64
import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image

from backend.app import create_app
from backend.config import ConfigError
from backend.images import get_image_store
from backend.store import get_store
from backend.store.docsize import stored_document_size
from tests.fixtures.data import covid_ct_image, dicom_file

CACHE_CONTROL = "private, max-age=31536000, immutable"


def post(client, data, name, headers=None, **form):
    return client.post("/analyze", data={"file": (io.BytesIO(data), name), **form}, headers=headers or {})


def objects_on_disk(app) -> list[str]:
    root = Path(app.config["DATA_DIR"]) / "images"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def jpeg_of(data_url: str) -> bytes:
    return base64.b64decode(data_url.partition(",")[2])


def test_a_new_analysis_keeps_its_full_size_images_and_the_original_as_sent(app, client):
    dicom = dicom_file("693_UNCR.dcm").read_bytes()
    response = post(client, dicom, "693_UNCR.dcm", window="mediastinal")
    assert response.status_code == 201
    body = response.get_json()
    prefix = f"analyses/local/{body['id']}/"
    assert objects_on_disk(app) == [prefix + "heatmap.jpg", prefix + "original", prefix + "slice.jpg"]

    stored = client.get(f"/analyses/{body['id']}").get_json()
    images = {entry["name"]: entry for entry in stored["images"]}
    assert stored["images"] == body["images"] and stored["parameters"] == {"window": "mediastinal", "frame": None}
    for name, data_url in (("slice.jpg", body["file_url"]), ("heatmap.jpg", body["heatmap_url"])):
        jpeg = jpeg_of(data_url)
        served = client.get(f"/analyses/{body['id']}/images/{name}")
        assert served.data == jpeg and served.mimetype == "image/jpeg"  # byte for byte the response's JPEG
        assert images[name] == {"name": name, "path": prefix + name, "content_type": "image/jpeg", "size": len(jpeg),
                                "sha256": hashlib.sha256(jpeg).hexdigest(), "width": 400, "height": 400}
        assert Image.open(io.BytesIO(served.data)).size == (400, 400)
    original = client.get(f"/analyses/{body['id']}/images/original")
    assert original.data == dicom and original.mimetype == "application/dicom"
    assert images["original"] == {"name": "original", "path": prefix + "original", "content_type": "application/dicom",
                                  "size": len(dicom), "sha256": hashlib.sha256(dicom).hexdigest()}
    assert stored_document_size("analyses", stored) <= app.config["DOC_BUDGET_BYTES"]
    assert "file_url" not in stored and stored["heatmap_url"].startswith("data:image/jpeg")  # thumbnails only


def test_images_come_with_a_strong_etag_and_cache_for_a_year_privately(client):
    body = post(client, covid_ct_image("COVID", 0).read_bytes(), "slice.png").get_json()
    url = f"/analyses/{body['id']}/images/original"
    first = client.get(url)
    sha256 = hashlib.sha256(first.data).hexdigest()
    assert first.mimetype == "image/png"
    assert first.headers["ETag"] == f'"{sha256}"' and first.headers["Cache-Control"] == CACHE_CONTROL
    again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == first.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": '"another"'}).status_code == 200


def test_someone_elses_images_are_not_there(app, client):
    with app.app_context():  # bob's analysis, written through the app's own stores
        get_image_store().put("analyses/bob/b1/slice.jpg", b"\xff\xd8\xff bob's", "image/jpeg")
        get_store().create({"id": "b1", "owner": "bob", "created_at": "2026-11-24T10:00:00.000000Z", "images": [
            {"name": "slice.jpg", "path": "analyses/bob/b1/slice.jpg", "content_type": "image/jpeg", "size": 9,
             "sha256": "0" * 64}]})
    for method in ("GET", "DELETE"):
        path = "/analyses/b1/images/slice.jpg" if method == "GET" else "/analyses/b1"
        response = client.open(path, method=method)
        assert response.status_code == 404 and response.get_json()["error"] == "not_found"
    assert client.post("/analyses/b1/reanalyze").status_code == 404
    assert objects_on_disk(app) == ["analyses/bob/b1/slice.jpg"]


def test_an_older_analysis_or_a_lost_object_answers_image_missing(app, client):
    with app.app_context():
        get_store().create({"id": "old", "owner": "local", "created_at": "2026-11-24T10:00:00.000000Z",
                            "filename": "old.png"})
    for name in ("slice.jpg", "heatmap.jpg", "original"):
        response = client.get(f"/analyses/old/images/{name}")
        assert response.status_code == 404 and response.get_json()["error"] == "image_missing"
    assert client.post("/analyses/old/reanalyze").get_json()["error"] == "image_missing"

    body = post(client, covid_ct_image("COVID", 0).read_bytes(), "slice.png").get_json()
    (Path(app.config["DATA_DIR"]) / "images" / body["images"][0]["path"]).unlink()
    assert client.get(f"/analyses/{body['id']}/images/slice.jpg").get_json()["error"] == "image_missing"
    assert client.get(f"/analyses/{body['id']}/images/heatmap.jpg").status_code == 200
    assert client.get(f"/analyses/{body['id']}/images/thumbnail.jpg").status_code == 404


def test_delete_removes_the_objects_and_the_document(app, client):
    keep = post(client, covid_ct_image("NonCOVID", 0).read_bytes(), "keep.png").get_json()
    gone = post(client, covid_ct_image("COVID", 0).read_bytes(), "gone.png").get_json()
    assert client.delete(f"/analyses/{gone['id']}").status_code == 204
    assert client.get(f"/analyses/{gone['id']}").status_code == 404
    assert client.get(f"/analyses/{gone['id']}/images/slice.jpg").status_code == 404
    assert objects_on_disk(app) == sorted(entry["path"] for entry in keep["images"])
    assert not (Path(app.config["DATA_DIR"]) / "images" / "analyses" / "local" / gone["id"]).exists()


def test_reanalysis_runs_the_model_on_the_stored_original_with_its_window(app, client):
    dicom = dicom_file("693_UNCR.dcm").read_bytes()
    earlier = post(client, dicom, "693_UNCR.dcm", window="bone").get_json()
    response = client.post(f"/analyses/{earlier['id']}/reanalyze")
    assert response.status_code == 201
    again = response.get_json()
    assert again["reanalysis_of"] == earlier["id"] and again["id"] != earlier["id"]
    assert response.headers["Location"] == f"/analyses/{again['id']}"
    assert again["parameters"] == {"window": "bone", "frame": None}
    assert again["prediction"] == earlier["prediction"] and again["file_url"] == earlier["file_url"]
    assert again["sha256"] == earlier["sha256"] and again["filename"] == "693_UNCR.dcm"
    assert client.get(f"/analyses/{again['id']}").get_json()["reanalysis_of"] == earlier["id"]
    assert client.get(f"/analyses/{again['id']}/images/original").data == dicom
    assert len(objects_on_disk(app)) == 6
    assert client.post("/analyses/nothing/reanalyze").get_json()["error"] == "not_found"


def test_a_retried_reanalysis_with_its_idempotency_key_is_stored_once(app, client):
    png = covid_ct_image("COVID", 1).read_bytes()
    earlier, other = post(client, png, "a.png").get_json(), post(client, png, "b.png").get_json()
    key = {"Idempotency-Key": "reanalyse-a"}
    first = client.post(f"/analyses/{earlier['id']}/reanalyze", headers=key)
    retried = client.post(f"/analyses/{earlier['id']}/reanalyze", headers=key)
    assert first.status_code == retried.status_code == 201 and "Idempotent-Replayed" not in first.headers
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.get_json()["id"] == first.get_json()["id"] and retried.get_json()["reanalysis_of"] == earlier["id"]
    assert len(client.get("/analyses").get_json()["items"]) == 3 and len(objects_on_disk(app)) == 9
    reused = client.post(f"/analyses/{other['id']}/reanalyze", headers=key)  # the same key, another analysis
    assert reused.status_code == 422 and reused.get_json()["error"] == "idempotency_key_reused"
    assert len(client.get("/analyses").get_json()["items"]) == 3


def test_image_store_none_keeps_thumbnails_only(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path), "IMAGE_STORE": "none", "TESTING": True})
    client = app.test_client()
    body = post(client, covid_ct_image("COVID", 0).read_bytes(), "s.png").get_json()
    assert "images" not in body and not (tmp_path / "images").exists()
    assert client.get(f"/analyses/{body['id']}/images/slice.jpg").get_json()["error"] == "image_missing"
    assert client.delete(f"/analyses/{body['id']}").status_code == 204


@pytest.mark.parametrize("settings, message", [({"IMAGE_STORE": "s3"}, "IMAGE_STORE='s3' is not one of"),
                                               ({"IMAGE_STORE": "gcs"}, "needs STORAGE_BUCKET")])
def test_an_image_store_that_cannot_work_stops_the_start(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=message):
        create_app({"DATA_DIR": str(tmp_path), **settings})
