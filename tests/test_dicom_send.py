"""Results sent to Orthanc by C-STORE and by STOW-RS, read back from Orthanc field by field; a PACS that refuses
leaves a clear `failed` delivery, one that is down a `pending` one with the error (tried again later)."""

import io
import time
import urllib.request

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import Comprehensive3DSRStorage, SecondaryCaptureImageStorage

from backend.dicom import dicomweb, send
from backend.dicom.settings import parse_destination
from tests.fixtures.dicom_study import headers, overlay
from tests.fixtures.results import result_files, sop_uids
from tests.fixtures.server import free_port

pytestmark = pytest.mark.orthanc
CALLING = "CTANALYSIS"


def check_in_orthanc(orthanc, study, files):
    """Orthanc holds the very instances sent, and they read back as the SR and key images of the study."""
    kept = orthanc.instances_of_study(study["study_uid"])
    kept = {ds.SOPInstanceUID: ds for ds in (pydicom.dcmread(io.BytesIO(data)) for data in kept)}
    assert set(kept) == sop_uids(files)
    [sr] = [ds for ds in kept.values() if ds.SOPClassUID == Comprehensive3DSRStorage]
    [group] = hd.sr.Comprehensive3DSR.from_dataset(sr).content.get_image_measurement_groups()
    [score] = group.get_measurements()
    assert score.value == pytest.approx(study["prediction"]["score"]) and "COVID-19" in score.name.meaning
    slices = headers()
    key_uids = [slices[key["index"]].SOPInstanceUID for key in study["key_slices"]]
    assert [image.referenced_sop_instance_uid for image in score.referenced_images] == key_uids
    images = sorted(
        (ds for ds in kept.values() if ds.SOPClassUID == SecondaryCaptureImageStorage), key=lambda ds: ds.InstanceNumber
    )
    assert [ds.SourceImageSequence[0].ReferencedSOPInstanceUID for ds in images] == key_uids
    for ds, key in zip(images, study["key_slices"], strict=True):  # they decode, to the pictures they were made of
        assert np.array_equal(ds.pixel_array, np.asarray(Image.open(io.BytesIO(overlay(key["index"]))).convert("RGB")))
        assert ds.PatientName == slices[0].PatientName and ds.StudyInstanceUID == slices[0].StudyInstanceUID


def test_results_go_to_orthanc_by_c_store(orthanc):
    study, files = result_files()
    orthanc.register("ctanalysis", CALLING, free_port())  # Orthanc takes C-STORE only from nodes it knows
    delivery = send.attempt(files, parse_destination(f"ORTHANC@127.0.0.1:{orthanc.dicom_port}"), CALLING)
    assert (delivery.state, delivery.to, delivery.error) == ("sent", f"ORTHANC@127.0.0.1:{orthanc.dicom_port}", None)
    check_in_orthanc(orthanc, study, files)


def test_results_go_to_orthanc_by_stow_rs(orthanc):
    study, files = result_files(label="COVID", score=0.87, study_id="st-test-stow")
    delivery = send.attempt(files, parse_destination(orthanc.dicomweb), CALLING)
    assert (delivery.state, delivery.error) == ("sent", None)
    check_in_orthanc(orthanc, study, files)


def test_wado_rs_gives_the_sent_instances_back_through_the_same_multipart_reader(orthanc):
    """Orthanc's WADO-RS answer is a multipart/related body written by another program: it parses too."""
    study, files = result_files()
    send.attempt(files, parse_destination(orthanc.dicomweb), CALLING)
    request = urllib.request.Request(
        f"{orthanc.dicomweb}/studies/{study['study_uid']}",
        headers={"Accept": 'multipart/related; type="application/dicom"'},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        parts = dicomweb.parts(answer.headers["Content-Type"], answer.read())
    assert sop_uids(parts) == sop_uids(files)


def test_an_unknown_calling_ae_is_refused_by_orthanc_and_reported(orthanc):
    _, files = result_files()
    started = time.monotonic()
    delivery = send.attempt(files, parse_destination(f"ORTHANC@127.0.0.1:{orthanc.dicom_port}"), "STRANGER")
    # Orthanc rejects it as transient (it may learn the node): tried again until DICOM_RESULTS_RETRY_S, then failed
    assert delivery.state == "pending" and "STRANGER" in delivery.error and "known nodes" in delivery.error
    assert time.monotonic() - started < 15
    assert orthanc.call("GET", "/instances") == []


@pytest.mark.parametrize("to", ["ORTHANC@127.0.0.1:{port}", "http://127.0.0.1:{port}/dicom-web"])
def test_a_pacs_that_is_down_leaves_the_delivery_pending_with_the_error(to):
    _, files = result_files()
    started = time.monotonic()
    delivery = send.attempt(files, parse_destination(to.format(port=free_port())), CALLING)  # nothing listens there
    assert delivery.state == "pending" and (
        "no association with ORTHANC" in delivery.error or "refused" in delivery.error
    )
    assert time.monotonic() - started < 10  # one attempt, no waiting: the study runner schedules the next
    assert [send.wait_after(attempts) for attempts in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_refusal_is_not_retried(orthanc):
    _, files = result_files()
    started = time.monotonic()
    delivery = send.attempt(files, parse_destination(f"{orthanc.url}/no-such-dicomweb"), CALLING)
    assert delivery.state == "failed" and "HTTP 404" in delivery.error  # failed, not pending: never tried again
    assert time.monotonic() - started < 1


def test_credentials_in_the_url_are_sent_and_never_shown(orthanc):
    _, files = result_files()
    url = orthanc.dicomweb.replace("http://", "http://reader:s3cret@")
    delivery = send.attempt(files, parse_destination(url), CALLING)
    assert delivery.state == "sent" and delivery.to == orthanc.dicomweb and "s3cret" not in str(delivery.as_dict())
