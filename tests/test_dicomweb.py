"""STOW-RS on the wire: request bodies split into their DICOM files, refusals, and the Store Instances Response.

Bodies come from three writers: urllib3's multipart encoder, this service's own sender, and Orthanc's
DICOMweb client, which posts to a small HTTP endpoint here that answers with these very functions.
"""

import io
import json
import threading
import urllib.error

import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian
from urllib3.fields import RequestField
from urllib3.filepost import encode_multipart_formdata
from waitress.server import create_server

from backend.dicom import dicomweb
from backend.errors import InvalidInput
from tests.fixtures.data import dicom_file
from tests.fixtures.dicom_study import series_files
from tests.fixtures.server import free_port


def urllib3_body(files, boundary="stow-test-boundary") -> tuple[str, bytes]:
    """A body written by urllib3's multipart encoder (an independent writer; Python's email package is not one: it
    turns every bare LF of a binary part into CRLF, which is also why dicomweb does not parse with it)."""
    fields = []
    for index, data in enumerate(files):
        field = RequestField(name=f"instance-{index}", data=data)
        field.make_multipart(content_type="application/dicom")
        fields.append(field)
    body, _ = encode_multipart_formdata(fields, boundary=boundary)
    return f'multipart/related; type="application/dicom"; boundary={boundary}', body


@pytest.fixture(scope="module")
def slices() -> list[bytes]:
    return [path.read_bytes() for path in series_files()[:3]]


@pytest.mark.parametrize("writer", ["urllib3", "ours"])
def test_the_parts_are_the_files_byte_for_byte(slices, writer):
    content_type, body = urllib3_body(slices) if writer == "urllib3" else dicomweb.multipart(slices)
    assert dicomweb.parts(content_type, body) == slices


def test_a_preamble_an_epilogue_padding_and_a_quoted_boundary_are_read(slices):
    body = (
        b"a preamble to ignore\r\n--b1 \t\r\nContent-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1"
        b"\r\n\r\n" + slices[0] + b"\r\n--b1\r\n\r\n" + slices[1] + b"\r\n--b1--\r\nan epilogue"
    )
    assert dicomweb.parts('multipart/related; type="application/dicom"; boundary="b1"', body) == slices[:2]


@pytest.mark.parametrize(
    "content_type, body, code",
    [
        ("application/dicom", b"DICM", "unsupported_media_type"),
        (
            'multipart/related; type="application/dicom+json"; boundary=b1',
            b"--b1\r\n\r\n{}\r\n--b1--",
            "unsupported_media_type",
        ),
        ("multipart/form-data; boundary=b1", b"--b1\r\n\r\nx\r\n--b1--", "unsupported_media_type"),
        ('multipart/related; type="application/dicom"', b"--b1\r\n\r\nx\r\n--b1--", "invalid_multipart"),
        ('multipart/related; type="application/dicom"; boundary=b1', b"--b1\r\n\r\nx\r\n", "invalid_multipart"),
        ('multipart/related; type="application/dicom"; boundary=b1', b"--b1--\r\n", "invalid_multipart"),
        (
            'multipart/related; type="application/dicom"; boundary=b1',
            b"--b1\r\nno blank line\r\n--b1--",
            "invalid_multipart",
        ),
        (
            'multipart/related; type="application/dicom"; boundary=b1',
            b"--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1--",
            "unsupported_media_type",
        ),
        ("", b"", "unsupported_media_type"),
    ],
)
def test_bodies_that_are_not_stow_rs_are_refused_with_a_catalogue_code(content_type, body, code):
    with pytest.raises(InvalidInput) as refused:
        dicomweb.parts(content_type, body)
    assert refused.value.code == code


def test_check_keeps_whole_ct_instances_and_says_why_others_fail(slices):
    study_uid = pydicom.dcmread(io.BytesIO(slices[0])).StudyInstanceUID
    other_study = dicom_file("CT_small.dcm").read_bytes()
    mr = dicom_file("MR_small.dcm").read_bytes()
    accepted, refused = dicomweb.check([slices[0], slices[1][:300000], mr, other_study, b"not dicom"], study_uid)
    assert [instance.data for instance in accepted] == [slices[0]]
    mr_ds = pydicom.dcmread(io.BytesIO(mr))
    assert [outcome.failure for outcome in refused] == [
        dicomweb.CANNOT_UNDERSTAND,
        dicomweb.SOP_CLASS_NOT_SUPPORTED,
        dicomweb.STUDY_MISMATCH,
        dicomweb.CANNOT_UNDERSTAND,
    ]
    assert (refused[1].sop_class_uid, refused[1].sop_instance_uid) == (mr_ds.SOPClassUID, mr_ds.SOPInstanceUID)
    assert refused[0].sop_instance_uid == pydicom.dcmread(io.BytesIO(slices[1])).SOPInstanceUID
    assert refused[3].sop_instance_uid == ""
    assert len(dicomweb.check([other_study])[0]) == 1  # without a study in the URL, any study


def test_a_deflated_instance_is_refused_before_it_is_inflated(slices):
    ds = pydicom.dcmread(io.BytesIO(slices[0]))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    _, [outcome] = dicomweb.check([buffer.getvalue()])
    assert (outcome.sop_instance_uid, outcome.failure) == (ds.SOPInstanceUID, dicomweb.SYNTAX_NOT_SUPPORTED)


@pytest.mark.parametrize("failures, status", [([None, None], 200), ([None, 0xC000], 202), ([0x0122, 0xC000], 409)])
def test_the_store_instances_response(failures, status):
    outcomes = [
        dicomweb.Outcome("1.2.840.10008.5.1.4.1.1.2", f"1.2.3.{index}", failure)
        for index, failure in enumerate(failures)
    ]
    code, body = dicomweb.response(outcomes)
    assert code == status
    answer = pydicom.Dataset.from_json(json.loads(json.dumps(body)))
    stored = [item.ReferencedSOPInstanceUID for item in answer.get("ReferencedSOPSequence", [])]
    failed = [(item.ReferencedSOPInstanceUID, item.FailureReason) for item in answer.get("FailedSOPSequence", [])]
    assert stored == [o.sop_instance_uid for o in outcomes if o.failure is None]
    assert failed == [(o.sop_instance_uid, o.failure) for o in outcomes if o.failure is not None]
    assert "00081190" not in body  # no RetrieveURL: this service serves no WADO-RS


def stow_endpoint(received: list):
    """A WSGI app answering POST .../studies with dicomweb's functions; accepted instances go to `received`."""

    def app(environ, start_response):
        body = environ["wsgi.input"].read()
        try:
            files = dicomweb.parts(environ.get("CONTENT_TYPE", ""), body)
        except InvalidInput as exc:
            start_response(f"{exc.status} Refused", [("Content-Type", "text/plain")])
            return [exc.code.encode()]
        accepted, refused = dicomweb.check(files)
        received.extend(accepted)
        stored = [dicomweb.Outcome(instance.sop_class_uid, instance.sop_instance_uid) for instance in accepted]
        status, answer = dicomweb.response(stored + refused)
        start_response(f"{status} Answered", [("Content-Type", "application/dicom+json")])
        return [json.dumps(answer).encode()]

    return app


@pytest.mark.orthanc
def test_orthanc_stores_a_real_series_here_by_stow_rs(orthanc):
    """Orthanc's DICOMweb client (it sends chunked bodies; waitress serves the endpoint, as it serves the service)."""
    received = []
    server = create_server(stow_endpoint(received), host="127.0.0.1", port=free_port(), threads=2)
    threading.Thread(target=server.run, daemon=True).start()
    try:
        series = orthanc.upload(series_files())[0]["ParentSeries"]
        orthanc.call(
            "PUT", "/dicom-web/servers/service", {"Url": f"http://127.0.0.1:{server.effective_port}/dicomweb/"}
        )
        orthanc.call("POST", "/dicom-web/servers/service/stow", {"Resources": [series], "Synchronous": True})
        originals = {pydicom.dcmread(path).SOPInstanceUID for path in series_files()}
        assert {instance.sop_instance_uid for instance in received} == originals

        mr = orthanc.upload([dicom_file("MR_small.dcm")])[0]["ID"]  # refused here (409): Orthanc's job fails
        with pytest.raises(urllib.error.HTTPError):
            orthanc.call("POST", "/dicom-web/servers/service/stow", {"Resources": [mr], "Synchronous": True})
        assert len(received) == 30
    finally:
        server.close()
