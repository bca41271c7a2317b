"""POST /studies and its routes on the real CT series (30 slices of a lung-tumour patient), in one service
app with the embedded stores and the local queue: uploaded as files and as a ZIP, answered with its slices in
position order, key slices and images; listed, filtered, re-analysed, deleted; bad uploads refused cleanly."""

import io
import json
import math
import random
import time
import zipfile

import numpy as np
import pydicom
import pytest
from PIL import Image

from backend.analysis.study import MAX_KEY_SLICES, top_k
from backend.app import create_app
from tests.fixtures.data import REPO
from tests.fixtures.images import decode_data_url, jpeg_quality, longer_side
from tests.fixtures.series import edited, files_form, halved, make_zip, series_bytes

MAX_UPLOAD_MB = 48
MAX_SLICES = 40
# The lung-tumour series comes out NonCOVID only with weights trained on hospital scans (model 3.x): the 2.x weights
# call its lung slices COVID (a false positive of the slice model no pooling corrects).
MODEL_V3 = not json.loads((REPO / "backend/ml/weights/metrics.json").read_text())["version"].startswith("2.")
needs_model_v3 = pytest.mark.skipif(not MODEL_V3, reason="needs the model 3.x weights (2.x serves); see the model card")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("studies") / "data"
    return create_app(
        {
            "STORE": "sqlite",
            "DATA_DIR": str(data_dir),
            "TESTING": True,
            "RATE_LIMIT": "1000/minute",
            "STUDY_MAX_UPLOAD_MB": MAX_UPLOAD_MB,
            "STUDY_MAX_SLICES": MAX_SLICES,
        }
    )


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def real():
    return series_bytes()


def wait(client, study_id, timeout_s=300) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        doc = client.get(f"/studies/{study_id}").get_json()
        if doc["status"] in ("done", "failed") or time.monotonic() > deadline:
            return doc
        time.sleep(0.2)


def objects_of(app, study_id) -> list[str]:
    root = app.extensions["image_store"].root
    return sorted(p.relative_to(root).as_posix() for p in root.glob(f"studies/*/{study_id}/**/*") if p.is_file())


def all_objects(app) -> list[str]:
    root = app.extensions["image_store"].root
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def as_files(client, real):
    """The series sent as repeated files, in a shuffled order (the order must come from the headers)."""
    names = list(real)
    random.Random(4).shuffle(names)
    response = client.post("/studies", data=files_form({f"a0002/{n}": real[n] for n in names}))
    assert response.status_code == 202, response.get_json()
    return response, wait(client, response.get_json()["id"])


@pytest.fixture(scope="module")
def as_zip(client, real):
    """The series as a ZIP, with what a ZIP from elsewhere may hold besides: notes, a nested archive, a symbolic
    link, names leading out of the archive."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in real.items():
            archive.writestr(f"a0002/{name}", data)
        archive.writestr("a0002/README.txt", "notes")
        archive.writestr("a0002/more.zip", make_zip({"1-01.dcm": real["1-01.dcm"]}))
        archive.writestr("../../etc/evil.dcm", real["1-01.dcm"])
        archive.writestr("/abs/evil.dcm", real["1-01.dcm"])
        link = zipfile.ZipInfo("a0002/link.dcm")
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")
    response = client.post("/studies", data={"file": (io.BytesIO(buffer.getvalue()), "a0002.zip")})
    assert response.status_code == 202, response.get_json()
    return response, wait(client, response.get_json()["id"])


def test_a_series_sent_as_files_is_one_study_with_its_slices_in_position_order(as_files, real):
    response, study = as_files
    queued = response.get_json()
    assert queued["status"] == "queued" and response.headers["Location"] == f"/studies/{queued['id']}"
    assert queued["progress"] == {"done": 0, "total": 30} and "slices" not in queued
    assert study["status"] == "done", study.get("error")
    headers = {
        pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID: pydicom.dcmread(
            io.BytesIO(data), stop_before_pixels=True
        )
        for data in real.values()
    }
    first = next(iter(headers.values()))
    assert study["study_uid"] == first.StudyInstanceUID and study["series_uid"] == first.SeriesInstanceUID
    assert study["series_description"] == first.SeriesDescription and study["modality"] == "CT"
    assert study["slice_count"] == 30 and study["progress"] == {"done": 30, "total": 30}
    assert study["filename"] == "a0002" and study["parameters"] == {"window": "lung"}
    assert study["skipped_series"] == [] and study["model"]["name"] == "covid-ct-effnet-lite0"
    assert study["ordered_by"] == "position"
    slices = study["slices"]
    assert [s["index"] for s in slices] == list(range(30))
    zs = [s["z"] for s in slices]
    assert zs == sorted(zs) and len(set(zs)) == 30  # along the normal (+z, feet to head), 8 mm apart
    for s in slices:
        header = headers[s["sop_instance_uid"]]
        assert s["z"] == pytest.approx(float(header.ImagePositionPatient[2]))
        assert s["instance_number"] == header.InstanceNumber
        assert 0 <= s["probability"] <= 1 and isinstance(s["assessable"], bool) and s["label"] in ("COVID", "NonCOVID")
        assert ("reason" in s) == (not s["assessable"])


def test_the_answer_is_the_top_k_mean_of_the_counted_slices_and_the_key_slices_drive_it(as_files):
    study = as_files[1]
    prediction = study["prediction"]
    assert prediction["assessable_slices"] == sum(s["assessable"] for s in study["slices"]) > 0
    assert all(s["assessable"] for s in study["slices"] if s["counted"])
    assert 0 < sum(s["counted"] for s in study["slices"]) < prediction["assessable_slices"]  # the ends do not count
    assessed = sorted((s["probability"] for s in study["slices"] if s["counted"]), reverse=True)
    k = top_k(len(assessed))
    assert prediction["score"] == pytest.approx(float(np.mean(assessed[:k])))
    assert prediction["label"] == ("COVID" if prediction["score"] >= prediction["threshold"] else "NonCOVID")
    assert "top 10%" in prediction["aggregation"]
    keys = study["key_slices"]
    assert 1 <= len(keys) <= min(MAX_KEY_SLICES, k)
    assert [k_["probability"] for k_ in keys] == pytest.approx(assessed[: len(keys)])
    for key in keys:
        row = study["slices"][key["index"]]
        assert row["counted"] and row["probability"] == pytest.approx(key["probability"])
        for name in ("file_thumbnail", "heatmap_thumbnail"):
            image = decode_data_url(key[name])
            assert longer_side(image) == 200 and jpeg_quality(image) == 50
    assert study["findings"] and study["recommendations"] and "Research use only" in study["recommendations"][-1]
    assert f"{prediction['score']:.0%}" in study["findings"][0]


@needs_model_v3
@pytest.mark.xfail(
    strict=True,
    reason="3.3.0 calls this non-COVID series COVID as a study: score 0.561 against its 0.290 threshold, from 1-06, "
    "1-07 and 1-15 of 19 counted slices (4 of 23 assessable slices COVID; 3.2.0: 0.446, 3.1.0: 0.508, COVID; "
    "3.0.0: 0.292, NonCOVID); see the model card. Strict: the mark goes when a model gets it right",
)
def test_the_real_lung_tumour_series_is_not_called_covid(as_files):
    study = as_files[1]
    assert study["prediction"]["label"] == "NonCOVID", study["findings"]
    first, last = study["slices"][0], study["slices"][-1]  # little or no lung at either end
    assert not (first["assessable"] and last["assessable"])


def test_every_slice_has_its_400px_image_and_heatmap_with_an_etag(client, as_files):
    study = as_files[1]
    for index in (0, 29):
        for name in ("slice.jpg", "heatmap.jpg"):
            response = client.get(f"/studies/{study['id']}/slices/{index}/{name}")
            assert response.status_code == 200 and response.mimetype == "image/jpeg"
            image = Image.open(io.BytesIO(response.data))
            assert longer_side(image) == 400 and jpeg_quality(image) == 70
            assert (
                client.get(
                    f"/studies/{study['id']}/slices/{index}/{name}", headers={"If-None-Match": response.headers["ETag"]}
                ).status_code
                == 304
            )
    assert client.get(f"/studies/{study['id']}/slices/30/slice.jpg").status_code == 404
    assert client.get(f"/studies/{study['id']}/slices/0/original").status_code == 404


def test_the_same_series_as_a_zip_gives_the_same_answer_and_names_what_it_left_out(as_zip, as_files):
    study, files = as_zip[1], as_files[1]
    assert study["status"] == "done" and study["filename"] == "a0002.zip"
    assert study["prediction"]["score"] == pytest.approx(files["prediction"]["score"], abs=1e-6)
    assert [s["sop_instance_uid"] for s in study["slices"]] == [s["sop_instance_uid"] for s in files["slices"]]
    skipped = {entry["name"].split("/", 1)[1]: entry["reason"] for entry in study["skipped_files"]}
    assert skipped["a0002/README.txt"] == "not a DICOM image"
    assert "nested archive" in skipped["a0002/more.zip"]
    assert "symbolic link" in skipped["a0002/link.dcm"]
    assert "unsafe path" in skipped["../../etc/evil.dcm"] and "unsafe path" in skipped["/abs/evil.dcm"]


def test_studies_are_listed_newest_first_filtered_by_dicom_study_and_paged(client, as_files, as_zip):
    page = client.get("/studies?limit=1").get_json()
    assert [s["id"] for s in page["items"]] == [as_zip[1]["id"]] and page["next_cursor"]
    assert "slices" not in page["items"][0] and page["items"][0]["key_slices"]
    older = client.get(f"/studies?limit=1&cursor={page['next_cursor']}").get_json()
    assert older["items"][0]["created_at"] <= page["items"][0]["created_at"]
    same = client.get(f"/studies?study_uid={as_files[1]['study_uid']}&limit=100").get_json()["items"]
    assert {as_files[1]["id"], as_zip[1]["id"]} <= {s["id"] for s in same}
    assert client.get("/studies?study_uid=1.2.3.4&limit=100").get_json()["items"] == []
    assert client.get("/studies?limit=0").status_code == 400


def test_reanalysis_runs_the_model_on_the_kept_files(client, as_zip):
    response = client.post(f"/studies/{as_zip[1]['id']}/reanalyze")
    assert response.status_code == 202
    again = wait(client, response.get_json()["id"])
    assert again["reanalysis_of"] == as_zip[1]["id"] and again["status"] == "done"
    assert again["prediction"]["score"] == pytest.approx(as_zip[1]["prediction"]["score"], abs=1e-6)
    assert again["series_uid"] == as_zip[1]["series_uid"] and again["slice_count"] == 30
    assert client.post("/studies/unknown/reanalyze").status_code == 404


def test_delete_removes_every_object_then_the_document(app, client, real):
    study = client.post("/studies", data=files_form({n: real[n] for n in list(real)[10:14]})).get_json()
    done = wait(client, study["id"])
    assert done["status"] == "done"
    kept = objects_of(app, study["id"])
    assert len([p for p in kept if "/dicom/" in p]) == 4 and len([p for p in kept if p.endswith("heatmap.jpg")]) == 4
    assert client.delete(f"/studies/{study['id']}").status_code == 204
    assert objects_of(app, study["id"]) == []
    assert not list(app.extensions["image_store"].root.glob(f"studies/*/{study['id']}"))  # no empty folder left
    assert client.get(f"/studies/{study['id']}").status_code == 404
    assert client.get(f"/studies/{study['id']}/slices/0/slice.jpg").status_code == 404
    assert client.delete(f"/studies/{study['id']}").status_code == 404


def test_incomplete_real_headers_are_analysed_not_refused(client, real):
    """No ImagePositionPatient (ordered by SliceLocation), an empty SOPInstanceUID on every slice, no PatientName,
    UIDs that are not standard; and with no SliceLocation either, InstanceNumber orders them."""
    names = list(real)[8:14]
    plain = {
        n: edited(
            real[n],
            remove=("ImagePositionPatient", "PatientName"),
            SOPInstanceUID="",
            SeriesInstanceUID="series-of-a-scanner_1",
            StudyInstanceUID="not a uid",
        )
        for n in names
    }
    by_number = {n: edited(data, remove=("SliceLocation",)) for n, data in plain.items()}
    for files, ordered_by in ((plain, "slice_location"), (by_number, "instance_number")):
        response = client.post("/studies", data=files_form(files))
        assert response.status_code == 202, response.get_json()
        study = wait(client, response.get_json()["id"])
        assert study["status"] == "done" and study["ordered_by"] == ordered_by
        assert study["series_uid"] == "series-of-a-scanner_1" and study["study_uid"] == "not a uid"
        assert {s["sop_instance_uid"] for s in study["slices"]} == {""}
        numbers = [s["instance_number"] for s in study["slices"]]
        assert numbers == (sorted(numbers, reverse=True) if ordered_by == "slice_location" else sorted(numbers))


def test_other_series_are_skipped_and_named_and_series_uid_chooses(client, real):
    names = list(real)
    ct = {n: real[n] for n in names[:5]}
    other_ct = {f"b-{n}": edited(real[n], SeriesInstanceUID="1.2.3.4.5") for n in names[5:8]}
    mr = {f"mr-{n}": edited(real[n], SeriesInstanceUID="1.2.3.9", Modality="MR") for n in names[8:10]}
    study = client.post("/studies", data=files_form({**ct, **other_ct, **mr})).get_json()
    series_uid = pydicom.dcmread(io.BytesIO(real[names[0]]), stop_before_pixels=True).SeriesInstanceUID
    assert study["series_uid"] == series_uid and study["slice_count"] == 5
    assert study["skipped_series"] == [
        {"series_uid": "1.2.3.4.5", "modality": "CT", "slices": 3, "reason": "fewer slices than the series analysed"},
        {"series_uid": "1.2.3.9", "modality": "MR", "slices": 2, "reason": "not CT (MR)"},
    ]
    chosen = client.post("/studies", data=files_form({**ct, **other_ct}, series_uid="1.2.3.4.5")).get_json()
    assert chosen["series_uid"] == "1.2.3.4.5" and chosen["slice_count"] == 3
    for doc in (study, chosen):
        assert wait(client, doc["id"])["status"] == "done"


def test_slices_that_cannot_be_decoded_are_named_and_a_study_of_only_those_fails(client, real):
    names = list(real)[12:16]

    def truncated(data):
        ds = pydicom.dcmread(io.BytesIO(data))
        ds.PixelData = ds.PixelData[:1000]
        buffer = io.BytesIO()
        ds.save_as(buffer)
        return buffer.getvalue()

    one_bad = {n: (truncated(real[n]) if i == 1 else real[n]) for i, n in enumerate(names)}
    study = wait(client, client.post("/studies", data=files_form(one_bad)).get_json()["id"])
    assert study["status"] == "done"
    bad = [s for s in study["slices"] if s.get("error")]
    assert len(bad) == 1 and bad[0]["probability"] is None and not bad[0]["assessable"]
    assert client.get(f"/studies/{study['id']}/slices/{bad[0]['index']}/slice.jpg").status_code == 404
    assert any("could not be decoded" in finding for finding in study["findings"])

    all_bad = wait(
        client, client.post("/studies", data=files_form({n: truncated(real[n]) for n in names})).get_json()["id"]
    )
    assert all_bad["status"] == "failed" and all_bad["error"]["error"] == "no_decodable_slice"
    assert "prediction" not in all_bad and "slices" not in all_bad
    assert client.get(f"/studies/{all_bad['id']}/slices/0/slice.jpg").status_code == 409


def lying_zip(size: int, declared: int) -> bytes:
    """A ZIP of one entry that inflates to `size` bytes but declares `declared` (both headers patched)."""
    data = bytearray(make_zip({"slice.dcm": bytes(size)}, folder=""))
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    data[local + 22 : local + 26] = declared.to_bytes(4, "little")
    data[central + 24 : central + 28] = declared.to_bytes(4, "little")
    return bytes(data)


def many_entries_zip(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n in range(count):
            archive.writestr(f"e{n}", b"")
    return buffer.getvalue()


BAD_UPLOADS = {
    # name: (form builder from the real slices, status, code)
    "zip bomb (declared size)": (
        lambda r: {"file": (io.BytesIO(make_zip({"s.dcm": bytes((MAX_UPLOAD_MB + 1) << 20)})), "bomb.zip")},
        413,
        "study_too_large",
    ),
    "entry inflating past its declared size": (
        lambda r: {"file": (io.BytesIO(lying_zip(8 * 2**20, 1000)), "l.zip")},
        400,
        "invalid_archive",
    ),
    "a directory of a million entries": (
        lambda r: {"file": (io.BytesIO(many_entries_zip(4 * MAX_SLICES + 1001)), "many.zip")},
        413,
        "too_many_slices",
    ),
    "more slices than allowed": (
        lambda r: {
            "file": (io.BytesIO(make_zip({f"{n}.dcm": r["1-01.dcm"] for n in range(MAX_SLICES + 1)})), "41.zip")
        },
        413,
        "too_many_slices",
    ),
    "a body over the limit": (
        lambda r: {"file": (io.BytesIO(bytes((MAX_UPLOAD_MB + 2) * 2**20)), "big.dcm")},
        413,
        "study_too_large",
    ),
    "a damaged zip": (lambda r: {"file": (io.BytesIO(make_zip(r)[:100_000]), "cut.zip")}, 400, "invalid_archive"),
    "no dicom in the zip": (
        lambda r: {"file": (io.BytesIO(make_zip({"notes.txt": b"hello"})), "n.zip")},
        422,
        "no_dicom",
    ),
    "not CT": (lambda r: files_form({n: edited(d, Modality="MR") for n, d in list(r.items())[:3]}), 422, "not_ct"),
    "slices of different sizes": (
        lambda r: files_form({"a.dcm": r["1-10.dcm"], "b.dcm": halved(r["1-11.dcm"])}),
        422,
        "mixed_slice_sizes",
    ),
    "an unknown series_uid": (
        lambda r: files_form({"a.dcm": r["1-10.dcm"]}, series_uid="1.2.3"),
        422,
        "unknown_series",
    ),
    "slices nothing orders": (
        lambda r: files_form(
            {
                n: edited(d, remove=("ImagePositionPatient", "SliceLocation", "InstanceNumber"))
                for n, d in list(r.items())[:2]
            }
        ),
        422,
        "unordered_series",
    ),
    "no file": (lambda r: {"window": "lung"}, 400, "missing_file"),
    "an unknown window": (lambda r: files_form({"a.dcm": r["1-10.dcm"]}, window="soft"), 400, "invalid_window"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_bad_uploads_get_a_json_4xx_and_nothing_is_kept(app, client, real, case):
    build, status, code = BAD_UPLOADS[case]
    before = (client.get("/studies?limit=100").get_json()["items"], all_objects(app))
    response = client.post("/studies", data=build(real))
    assert (response.status_code, response.get_json()["error"]) == (status, code), response.get_json()
    assert response.get_json()["message"]
    assert (client.get("/studies?limit=100").get_json()["items"], all_objects(app)) == before


def test_an_unknown_study_is_404_and_someone_elses_too(client, as_files):
    assert client.get("/studies/nope").status_code == 404
    assert client.get(f"/studies/{as_files[1]['id']}/slices/0/other.png").status_code == 404


def test_a_study_of_1000_slices_fits_the_document_budget(real):
    """Per-slice entries are small numbers; only the key slices carry thumbnails, shrunk if they must be."""
    from backend.analysis.study import KeyCandidate, fit_key_slices
    from backend.store.docsize import stored_document_size
    from backend.utils.helpers import fit_to_box

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (400, 400), np.uint8)  # incompressible: the largest thumbnails there can be
    candidates = [
        KeyCandidate(0.9, i, fit_to_box(noise), rng.integers(0, 255, (400, 400, 3), np.uint8), [])
        for i in range(MAX_KEY_SLICES)
    ]
    n = 1000
    doc = {
        "id": "a" * 32,
        "owner": "x" * 28,
        "created_at": "2026-12-06T10:00:00.000000Z",
        "status": "done",
        "filename": "f" * 255,
        "slice_count": n,
        "findings": ["finding " * 40] * 5,
        "slice_table": {
            "instance_number": list(range(n)),
            "sop_instance_uid": ["1." * 32] * n,
            "z": [math.pi] * n,
            "probability": [0.5] * n,
            "label": ["NonCOVID"] * n,
            "assessable": [True] * n,
            "error": [None] * n,
        },
    }
    fitted = fit_key_slices(doc, candidates, "analyses-studies", 262144)
    assert stored_document_size("analyses-studies", fitted) <= 262144
    assert len(fitted["key_slices"]) == MAX_KEY_SLICES and all(k["file_thumbnail"] for k in fitted["key_slices"])


def test_slices_near_the_apices_and_bases_do_not_decide_the_study():
    """Three edge slices (little lung) at P(COVID) 0.9 and a clear middle: NonCOVID, and no edge slice is key."""
    from backend.analysis.study import KeyCandidate, SliceOutcome, StudyAnswer

    shares = [0.05, 0.1, 0.3, 0.4, 0.45, 0.45, 0.4, 0.3, 0.2, 0.1]
    probabilities = [0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9]
    answer = StudyAnswer(len(shares), threshold=0.5)
    for index, (share, p) in enumerate(zip(shares, probabilities, strict=True)):
        label = "COVID" if p >= 0.5 else "NonCOVID"
        answer.add(SliceOutcome(index, p, label, True, lung_share=share), KeyCandidate(p, index, None, np.zeros(1), []))
    prediction = answer.prediction()
    assert prediction["label"] == "NonCOVID" and prediction["score"] == pytest.approx(0.1)
    assert prediction["assessable_slices"] == 10
    assert {o.index for o in answer.counted} == {2, 3, 4, 5, 6, 7}  # at least half of the fullest slice's 0.45
    assert {c.index for c in answer.key_candidates()} <= {2, 3, 4, 5, 6, 7}


def test_a_cut_off_delivery_found_where_no_pacs_is_set_is_failed_with_the_reason(app):
    """A done study whose sender died while delivering (its lease expired) is found by the scan; this service has no
    DICOM_RESULTS_TO to send it to, so the delivery ends failed, saying so, rather than pending for ever."""
    store = app.extensions["store"]
    store.create_study(
        {
            "id": "cut-off",
            "owner": "local",
            "created_at": "2026-12-07T00:00:00.000000Z",
            "status": "done",
            "study_uid": "1.2.3",
            "slice_count": 1,
            "results_delivery": {"state": "pending", "to": "PACS@127.0.0.1:4242", "error": None},
            "lease_owner": "a-worker-that-died",
            "lease_until": "2026-12-07T00:01:00+00:00",
        }
    )
    app.extensions["study_queue"].scan()
    deadline = time.monotonic() + 30
    while (doc := store.get_study("cut-off"))["results_delivery"]["state"] == "pending":
        assert time.monotonic() < deadline, "the cut-off delivery was never taken up"
        time.sleep(0.1)
    assert doc["results_delivery"] == {
        "state": "failed",
        "to": "PACS@127.0.0.1:4242",
        "error": "DICOM_RESULTS_TO is empty where it resumed",
        "attempts": 1,
    }
    assert doc["status"] == "done" and doc["lease_owner"] is None
