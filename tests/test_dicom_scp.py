"""The C-STORE listener with Orthanc as the real partner, and hostile peers.

The listener runs in the test process on a free loopback port with the real local image store;
Orthanc pushes the real series to it through its REST API (/modalities/<id>/store), as a PACS
operator would. What Orthanc never sends (a cut-short file, a stalled connection) comes from
pynetdicom and a raw socket.
"""

import copy
import io
import socket
import threading
import time
import urllib.error

import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEG2000Lossless, generate_uid
from pynetdicom.sop_class import CTImageStorage

from backend.dicom import report, results
from backend.dicom.scp import CANNOT_UNDERSTAND, OUT_OF_RESOURCES
from tests.fixtures.data import dicom_file
from tests.fixtures.dicom_peer import AE_TITLE, associate, echo, running_listener
from tests.fixtures.dicom_study import headers, series_files, study_document

pytestmark = pytest.mark.orthanc


@pytest.fixture
def orthanc(own_orthanc_server):
    """This module's Orthanc, emptied: the listener's tests are many short waits, run beside the other DICOM tests."""
    own_orthanc_server.clear()
    return own_orthanc_server


@pytest.fixture
def listener(tmp_path):
    with running_listener(tmp_path / "data") as running:
        yield running


def push(orthanc, listener, resources, modality="ctanalysis", calling=None):
    """Orthanc sends `resources` (its ids) to the listener by C-STORE; Orthanc's answer."""
    entry = {"AET": AE_TITLE, "Host": "127.0.0.1", "Port": listener.port}
    if calling:
        entry["LocalAet"] = calling
    orthanc.call("PUT", f"/modalities/{modality}", entry)
    return orthanc.call("POST", f"/modalities/{modality}/store", {"Resources": resources, "Synchronous": True})


def orthanc_echo(orthanc, listener, modality="ctanalysis") -> bool:
    orthanc.call("PUT", f"/modalities/{modality}", {"AET": AE_TITLE, "Host": "127.0.0.1", "Port": listener.port})
    try:
        orthanc.call("POST", f"/modalities/{modality}/echo", {})
        return True
    except urllib.error.HTTPError:
        return False


def test_orthanc_pushes_a_real_series_which_completes_once_until_it_changes(orthanc, listener):
    originals = {ds.SOPInstanceUID: ds for ds in (pydicom.dcmread(path) for path in series_files())}
    uploaded = orthanc.upload(series_files())
    series_id = uploaded[0]["ParentSeries"]

    answer = push(orthanc, listener, [series_id])
    assert answer["InstancesCount"] == 30 and answer["FailedInstancesCount"] == 0
    series = listener.wait_for_series(1)
    first = next(iter(originals.values()))
    assert (series.study_uid, series.series_uid, series.calling_ae) == (
        first.StudyInstanceUID,
        first.SeriesInstanceUID,
        "ORTHANC",
    )
    assert {stored.sop_instance_uid for stored in series.instances} == set(originals)
    for stored in series.instances:  # kept as received: the same data set, pixels and all
        kept = pydicom.dcmread(io.BytesIO(listener.store.get(stored.path)))
        assert kept.PixelData == originals[kept.SOPInstanceUID].PixelData
        assert kept.file_meta.MediaStorageSOPInstanceUID == kept.SOPInstanceUID
    assert len(listener.received_objects()) == 30

    push(orthanc, listener, [series_id])  # the same set again: stored once, no new series
    time.sleep(2.5)
    assert len(listener.completed) == 1 and len(listener.received_objects()) == 30

    extra = copy.deepcopy(first)
    extra.SOPInstanceUID = extra.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buffer = io.BytesIO()
    extra.save_as(buffer)
    [added] = [orthanc.call("POST", "/instances", buffer.getvalue(), "application/dicom")]
    push(orthanc, listener, [added["ID"]])  # one new instance: the set changed, a new series of 31
    changed = listener.wait_for_series(2)
    assert len(changed.instances) == 31 and changed.fingerprint != series.fingerprint
    assert {stored.sop_instance_uid for stored in changed.instances} == set(originals) | {extra.SOPInstanceUID}


def test_a_series_sent_in_two_bursts_completes_with_both(orthanc, listener):
    uploaded = orthanc.upload(series_files())
    push(orthanc, listener, [item["ID"] for item in uploaded[:10]])
    assert len(listener.wait_for_series(1).instances) == 10
    push(orthanc, listener, [item["ID"] for item in uploaded[10:]])
    assert len(listener.wait_for_series(2).instances) == 30


def test_an_unknown_calling_ae_is_refused_at_association(orthanc, listener):
    uploaded = orthanc.upload(series_files()[:1])
    with pytest.raises(urllib.error.HTTPError):  # Orthanc calling as STRANGER: its store job fails
        push(orthanc, listener, [uploaded[0]["ID"]], modality="stranger", calling="STRANGER")
    assert associate(listener.port, "INTRUDER").is_rejected
    assert listener.received_objects() == []
    assert orthanc_echo(orthanc, listener) and echo(listener.port) == 0x0000


def test_a_non_image_sop_class_is_refused(orthanc, listener):
    """Orthanc offers our own SR and an MR image: the listener accepts no context for them."""
    slices = headers()
    sr = results.encode(report.structured_report(study_document(slices), slices))
    sent = [
        orthanc.call("POST", "/instances", sr, "application/dicom")["ID"],
        orthanc.upload([dicom_file("MR_small.dcm")])[0]["ID"],
    ]
    for resource in sent:
        with pytest.raises(urllib.error.HTTPError):
            push(orthanc, listener, [resource])
    assert listener.received_objects() == [] and listener.completed == []
    assert orthanc_echo(orthanc, listener)


def test_a_cut_short_instance_is_refused_with_nothing_stored(listener, tmp_path):
    whole = series_files()[0].read_bytes()
    assoc = associate(listener.port, "ORTHANC", CTImageStorage)
    try:
        for cut in (len(whole) // 2, len(whole) - 10, 2000):  # in the pixels, at their end, in the header
            path = tmp_path / f"cut-{cut}.dcm"
            path.write_bytes(whole[:cut])
            assert assoc.send_c_store(path).Status == CANNOT_UNDERSTAND, cut
        assert listener.received_objects() == []
        assert assoc.send_c_store(series_files()[0]).Status == 0x0000  # the whole file, on the same association
    finally:
        assoc.release()
    assert len(listener.received_objects()) == 1


def send_files(port, paths, contexts=((CTImageStorage, None),)) -> list[int]:
    assoc = associate(port, "ORTHANC", *contexts)
    try:
        return [assoc.send_c_store(path).Status for path in paths]
    finally:
        assoc.release()


def test_a_sender_pausing_mid_association_longer_than_stable_s_still_sends_one_series(tmp_path):
    """A busy PACS may pause between two instances of one association for longer than DICOM_STABLE_S: the series
    waits for the association to end instead of completing with the instances sent so far (a split series, two
    studies, seen in CI at DICOM_STABLE_S=0.5 s)."""
    paths = series_files()[:4]
    with running_listener(tmp_path / "data", stable_s=0.3) as listener:
        assoc = associate(listener.port, "ORTHANC", (CTImageStorage, None))
        try:
            assert [assoc.send_c_store(path).Status for path in paths[:2]] == [0, 0]
            time.sleep(1.0)  # over three times stable_s, within the listener's 2 s timeout
            assert listener.completed == []
            assert [assoc.send_c_store(path).Status for path in paths[2:]] == [0, 0]
        finally:
            assoc.release()
        assert len(listener.wait_for_series(1, timeout_s=5).instances) == 4


def test_a_completed_set_is_remembered_across_restarts(tmp_path):
    paths = series_files()[:5]
    with running_listener(tmp_path / "data") as first:
        assert send_files(first.port, paths) == [0] * 5
        first.wait_for_series(1)
    with running_listener(tmp_path / "data") as second:  # the same image store, a new process's listener
        assert send_files(second.port, paths[:3]) == [0] * 3  # part of the same series again: nothing new
        time.sleep(2.5)
        assert second.completed == []
        assert send_files(second.port, series_files()[5:6]) == [0]  # one more: the whole set again, with it
        assert len(second.wait_for_series(1).instances) == 6


def test_a_series_whose_study_could_not_be_made_is_offered_again(tmp_path):
    failures = ["the store is down"]

    def make_study(series):
        if failures:
            raise RuntimeError(failures.pop())

    with running_listener(tmp_path / "data", on_series=make_study) as listener:
        assert send_files(listener.port, series_files()[:2]) == [0, 0]
        assert len(listener.wait_for_series(1).instances) == 2 and failures == []
        time.sleep(2.5)
        assert len(listener.completed) == 1


def test_compressed_ct_is_taken_and_deflate_is_not_offered(listener):
    assert send_files(listener.port, [dicom_file("693_J2KR.dcm")], [(CTImageStorage, [JPEG2000Lossless])]) == [
        0x0000
    ]  # JPEG 2000 from pydicom-data
    deflated = associate(listener.port, "ORTHANC", (CTImageStorage, [DeflatedExplicitVRLittleEndian]))
    assert not deflated.is_established or not deflated.accepted_contexts  # a deflate bomb never gets in
    if deflated.is_established:
        deflated.release()
    assert len(listener.received_objects()) == 1 and echo(listener.port) == 0x0000


def test_an_image_store_that_cannot_take_an_instance_answers_out_of_resources(listener):
    blocked = listener.store.root / "dicom"
    blocked.write_bytes(b"a file where the received instances' folder should be")
    assert send_files(listener.port, series_files()[:1]) == [OUT_OF_RESOURCES]
    blocked.unlink()
    assert send_files(listener.port, series_files()[:1]) == [0x0000] and echo(listener.port) == 0x0000


@pytest.mark.parametrize("first_bytes", [b"", b"\x01\x00\x00\x00\x01\x00", b"\x01\x00\x00\x00\x00\x44\x00\x01"])
def test_a_stalled_connection_is_dropped_and_echo_still_answers(orthanc, listener, first_bytes):
    """Nothing sent, half a PDU header, a PDU that never ends: each is closed after the timeout (2 s here)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", listener.port), timeout=20) as stalled:
        stalled.sendall(first_bytes)
        answers = []
        meanwhile = threading.Thread(target=lambda: answers.append(orthanc_echo(orthanc, listener)))
        meanwhile.start()
        meanwhile.join(15)
        assert answers == [True]  # while one peer stalls, others are served
        assert stalled.recv(1024) == b""  # closed by the listener
    assert time.monotonic() - started < 10
    assert orthanc_echo(orthanc, listener) and echo(listener.port) == 0x0000
