"""Hostile JSON and transport (issue 10): deep nesting, bad base64, wrong types, `limit` and
`cursor` garbage, form-field floods, non-UTF-8 filenames, and the HTTP server's own limits
(oversized headers and bodies) answered in the JSON error contract by the real server process.
"""
import base64
import hashlib
import io
import json
import uuid

import pydicom
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from backend.store import get_store
from backend.store.base import LOCAL_OWNER
from tests.fixtures.data import dicom_file
from tests.fixtures.hostile import (assert_clean_message, assert_client_error, assert_error, assert_rejected,
                                    assert_sane_analysis, ct_png, post_file, raw_exchange)
from tests.fixtures.http import multipart, request
from tests.fixtures.server import running_server


def post_json_bytes(client, body: bytes):
    return client.post("/analyze", data=body, content_type="application/json")


def png_b64() -> str:
    return base64.b64encode(ct_png((128, 128))).decode()


# --- JSON bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    b'{"image": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"image": "x", "filename": ' + b"{" * 50_000 + b"}" * 50_000 + b"}",
], ids=["list", "object", "in-image", "in-filename"])
def test_json_nested_100000_deep_is_invalid_json(client, body):
    assert_rejected(client, post_json_bytes(client, body), 400, "invalid_json")


@pytest.mark.parametrize("body", [b"{", b"{'image': 'abc'}", b'{"image": "abc",}', b"\xff\xfe{}", b"image=abc",
                                  b'{"image": "\\ud800"}' + b"x"])
def test_body_that_is_not_json(client, body):
    assert_rejected(client, post_json_bytes(client, body), 400, "invalid_json")


@pytest.mark.parametrize("body", [
    {"image": 123}, {"image": []}, {"image": {}}, {"image": None}, {"image": ""}, {"image": True},
    {"image": ["data:image/png;base64,AAAA"]}, {"filename": "slice.png"}, [], [1, 2], "image", 42, None,
])
def test_json_without_a_string_image(client, body):
    assert_rejected(client, post_json_bytes(client, json.dumps(body).encode()), 400, "missing_image")


@pytest.mark.parametrize("image, code", [
    ("@@not base64@@", "invalid_base64"),
    ("QUJ", "invalid_base64"),
    ("data:image/png;base64,@@@", "invalid_base64"),
    ("data:image/png;base64,AAA\u00e9", "invalid_base64"),
    ("data:image/png,%89PNG", "invalid_data_url"),
    ("data:text/plain;charset=utf-8,hello", "invalid_data_url"),
])
def test_bad_base64_and_data_urls(client, image, code):
    assert_rejected(client, client.post("/analyze", json={"image": image}), 400, code)


def test_base64_of_no_image_is_unsupported(client):
    response = client.post("/analyze", json={"image": base64.b64encode(b"%PDF-1.7 hello").decode()})
    assert_rejected(client, response, 415, "unsupported_format")


@pytest.mark.parametrize("field, value, code", [
    ("window", 5, "invalid_window"),
    ("window", ["lung"], "invalid_window"),
    ("window", {"name": "lung"}, "invalid_window"),
    ("window", "LUNG; DROP TABLE analyses", "invalid_window"),
    ("frame", "abc", "invalid_frame"),
    ("frame", 1.5, "invalid_frame"),
    ("frame", [0], "invalid_frame"),
    ("frame", {"index": 0}, "invalid_frame"),
    ("frame", -1, "invalid_frame"),
    ("frame", 1, "invalid_frame"),  # a PNG has one frame: only 0 is valid
    ("frame", True, "invalid_frame"),
    ("frame", 1e300, "invalid_frame"),
])
def test_wrong_types_and_values_for_fields(client, field, value, code):
    response = client.post("/analyze", json={"image": png_b64(), "filename": "s.png", field: value})
    assert_rejected(client, response, 400, code)


@pytest.mark.parametrize("filename", [123, ["a.png"], {"name": "a.png"}, False, "x" * 10_000, "../../etc/passwd",
                                      "a\u0000b\nc\u202e.png", "\U0001fac1.png"])
def test_odd_filenames_in_json_never_fail_the_request(client, filename):
    """Not specified beyond "never a 5xx": either a 400, or a sanitised printable display name."""
    response = client.post("/analyze", json={"image": png_b64(), "filename": filename})
    if response.status_code == 201:
        name = response.get_json()["filename"]
        assert isinstance(name, str) and name.isprintable() and 0 < len(name) <= 255, name
        assert "/" not in name and "\\" not in name and "\u202e" not in name
        assert client.get(f"/analyses/{response.get_json()['id']}").get_json()["filename"] == name
    else:
        assert_client_error(client, response)


def test_a_valid_json_upload_still_works(client):
    response = client.post("/analyze", json={"image": png_b64(), "filename": "ok.png", "window": "lung", "frame": 0})
    assert response.status_code == 201, response.get_data(as_text=True)[:300]
    assert_sane_analysis(response.get_json())


# --- limit and cursor -------------------------------------------------------------------------


def _make_docs(app, count):
    with app.app_context():
        store = get_store()
        for i in range(count):
            store.create({"id": f"doc{i:03d}", "created_at": f"2026-11-24T10:00:{i:02d}.000000Z",
                          "filename": f"{i}.png", "owner": LOCAL_OWNER})


@pytest.mark.parametrize("limit", ["\u00b2", "\u0663", "0", "101", "500", "9" * 5000, "-1", "+5", " 5", "5 ", "1.0",
                                   "1e2", "0x10", "abc", "5\u0000"])
def test_invalid_limit(app, client, limit):
    _make_docs(app, 3)
    response = client.get("/analyses", query_string={"limit": limit})
    assert_error(response, 400, "invalid_limit")


@pytest.mark.parametrize("limit, count", [("1", 1), ("100", 3), ("20", 3)])
def test_valid_limits(app, client, limit, count):
    _make_docs(app, 3)
    response = client.get("/analyses", query_string={"limit": limit})
    assert response.status_code == 200 and len(response.get_json()["items"]) == count


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "garbage!",
    "%%%%",
    "x" * 100_000,
    _b64(b"[" * 100_000 + b"]" * 100_000),
    _b64(b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
    _b64(b'[["2026-11-24T10:00:00.000000Z", ' * 10_000 + b'"x"' + b"]" * 10_000 + b', "doc001"]'),
    _b64(b'{"created_at": "2026-11-24T10:00:00.000000Z", "id": "doc001"}'),
    _b64(b"[1, 2]"),
    _b64(b"[null, null]"),
    _b64(b'["yesterday", "doc001"]'),
    _b64(b'["2026-11-24T10:00:00.000000Z"]'),
    _b64(b'["2026-11-24T10:00:00.000000Z", "doc001", "extra"]'),
    _b64(b'["2026-11-24T10:00:00.000000Z", 5]'),
    _b64(b"\xff\xfe\x00\x01"),
    _b64(b"9" * 5000),
], ids=lambda cursor: f"{cursor[:12]}..{len(cursor)}")
def test_invalid_cursor(app, client, cursor):
    _make_docs(app, 3)
    response = client.get("/analyses", query_string={"cursor": cursor})
    assert_error(response, 400, "invalid_cursor")


def test_issued_cursors_still_page(app, client):
    _make_docs(app, 5)
    first = client.get("/analyses?limit=2").get_json()
    second = client.get("/analyses", query_string={"limit": 2, "cursor": first["next_cursor"]})
    assert second.status_code == 200
    assert [d["id"] for d in second.get_json()["items"]] == ["doc002", "doc001"]


# --- Multipart: form-field floods, non-UTF-8 filenames -------------------------------------


def test_ten_thousand_form_fields(client):
    fields = {f"field{i}": "x" for i in range(10_000)}
    response = client.post("/analyze", data={**fields, "file": (io.BytesIO(ct_png()), "slice.png")})
    assert_rejected(client, response, 400, "too_many_form_fields")


def test_a_few_extra_form_fields_are_fine(client):
    response = client.post("/analyze", data={"note": "x", "patient": "y", "file": (io.BytesIO(ct_png()), "slice.png")})
    assert response.status_code == 201


def _raw_multipart(filename: bytes, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\n".encode()
            + b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
            + b"Content-Type: application/octet-stream\r\n\r\n" + data + f"\r\n--{boundary}--\r\n".encode())
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("filename", [b"\xffslice\xe9\x80.dcm", b"slice\xc3\x28.dcm", b"\xed\xa0\x80slice.dcm",
                                      b"sl\x00ice.dcm"])
def test_filename_with_non_utf8_bytes_is_accepted_and_sanitised(client, filename):
    body, content_type = _raw_multipart(filename, dicom_file("693_UNCR.dcm").read_bytes())
    response = client.post("/analyze", data=body, content_type=content_type)
    assert response.status_code == 201, response.get_data(as_text=True)[:300]
    name = response.get_json()["filename"]
    assert name.isprintable() and "slice" in name.replace("\x00", "") and name.endswith(".dcm"), name
    assert client.get(f"/analyses/{response.get_json()['id']}").get_json()["filename"] == name


def test_filename_of_only_invalid_bytes(client):
    body, content_type = _raw_multipart(b"\xff\xfe\x80", ct_png())
    response = client.post("/analyze", data=body, content_type=content_type)
    assert response.status_code == 201, response.get_data(as_text=True)[:300]
    assert response.get_json()["filename"].isprintable() and response.get_json()["filename"]


# --- Headers on every API answer -----------------------------------------------------------


def test_nosniff_on_every_api_answer(client):
    answers = [
        post_file(client, dicom_file("693_UNCR.dcm").read_bytes()),
        client.get("/analyses"),
        client.get("/analyses?limit=abc"),
        client.get("/analyses/nope"),
        client.get("/health"),
        client.put("/analyze"),
        client.post("/analyze", data={"other": "x"}),
        client.post("/analyze", json={"image": "@@"}),
        client.get("/nowhere"),
    ]
    for response in answers:
        assert response.headers.get("X-Content-Type-Options") == "nosniff", (response.request.path, response.status)


# --- The real server: its own limits in the JSON contract ---------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One real server process for the transport tests: uploads capped at 1 MB."""
    data_dir = tmp_path_factory.mktemp("transport") / "data"
    with running_server({"STORE": "sqlite", "DATA_DIR": str(data_dir), "MAX_UPLOAD_MB": "1"}) as base_url:
        yield base_url


def _server_count(server) -> int:
    status, _, raw = request("GET", server + "/analyses?limit=100")
    assert status == 200
    return len(json.loads(raw)["items"])


def _assert_json_error(status, headers, raw, expected_status, code):
    assert status == expected_status, (status, raw[:300])
    assert headers.get("content-type", "").startswith("application/json"), headers
    body = json.loads(raw)
    assert body["error"] == code
    assert_clean_message(body["message"])
    assert headers.get("x-content-type-options") == "nosniff"


def test_no_server_header_naming_the_server_or_a_version(server):
    for method, path in [("GET", "/health"), ("GET", "/analyses"), ("GET", "/nowhere"), ("POST", "/analyze")]:
        status, headers, _ = request(method, server + path, b"" if method == "POST" else None)
        value = {k.lower(): v for k, v in headers.items()}.get("server", "")
        assert "waitress" not in value.lower() and not any(ch.isdigit() for ch in value), (path, value)
        assert {k.lower(): v for k, v in headers.items()}.get("x-content-type-options") == "nosniff", path


def test_oversized_headers_get_a_json_431(server):
    before = _server_count(server)
    padding = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 8000) for i in range(128))  # 1 MB of headers
    status, headers, raw = raw_exchange(server, b"GET /health HTTP/1.1\r\nHost: localhost\r\n" + padding
                                        + b"Connection: close\r\n\r\n")
    _assert_json_error(status, headers, raw, 431, "request_header_fields_too_large")
    assert request("GET", server + "/health")[0] == 200
    assert _server_count(server) == before


def test_body_over_max_upload_mb_gets_a_json_413(server):
    before = _server_count(server)
    body, content = multipart("file", "big.dcm", bytes(4 * 1024 * 1024))  # 4 MB against a 1 MB limit
    status, headers, raw = raw_exchange(server, (
        f"POST /analyze HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content['Content-Type']}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)
    _assert_json_error(status, headers, raw, 413, "request_entity_too_large")
    assert _server_count(server) == before


def test_chunked_body_over_max_upload_mb_gets_a_json_413(server):
    before = _server_count(server)
    body, content = multipart("file", "big.dcm", bytes(4 * 1024 * 1024))
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 65536]), body[i:i + 65536]) for i in range(0, len(body), 65536))
    status, headers, raw = raw_exchange(server, (
        f"POST /analyze HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content['Content-Type']}\r\n"
        f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode() + chunks + b"0\r\n\r\n")
    _assert_json_error(status, headers, raw, 413, "request_entity_too_large")
    assert _server_count(server) == before


def test_non_utf8_filename_through_the_real_server(server):
    before = _server_count(server)
    body, content_type = _raw_multipart(b"\xffslice\xe9.dcm", dicom_file("693_UNCR.dcm").read_bytes())
    status, headers, raw = request("POST", server + "/analyze", body, {"Content-Type": content_type})
    assert status == 201, raw[:300]
    name = json.loads(raw)["filename"]
    assert name.isprintable() and "slice" in name and name.endswith(".dcm")
    assert _server_count(server) == before + 1


def test_deep_json_through_the_real_server(server):
    before = _server_count(server)
    status, headers, raw = request("POST", server + "/analyze", b"[" * 100_000 + b"]" * 100_000,
                                   {"Content-Type": "application/json"})
    _assert_json_error(status, {k.lower(): v for k, v in headers.items()}, raw, 400, "invalid_json")
    assert _server_count(server) == before


# Bytes that look like multipart structure, for a file's own content: line breaks, blank lines, dashes,
# boundary-like and header-like text, bytes that are not UTF-8.
MULTIPART_LOOKALIKES = st.lists(st.one_of(
    st.sampled_from([b"\r\n", b"\r\n\r\n", b"--", b"\r\n--", b"--" + b"a" * 32 + b"\r\n",
                     b'Content-Disposition: form-data; name="file"; filename="\xe9.dcm"', b"\xff\xfe\x80",
                     b"Content-Type: text/plain"]),
    st.binary(max_size=12)), max_size=12).map(b"".join)


@settings(max_examples=20, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(payload=MULTIPART_LOOKALIKES)
@example(payload=b"\r\n\r\n--not-the-boundary\r\nX-Note: caf\xe9\r\n\r\n")  # a part's headers, lookalike
def test_an_upload_is_kept_byte_for_byte_whatever_it_holds(client, payload):
    """A DICOM slice carrying multipart-like bytes in a private element, sent with a legacy-encoded file name
    (which werkzeug cannot read, so the form is read a second time): analysed and kept exactly as sent."""
    ds = pydicom.dcmread(dicom_file("693_UNCR.dcm"))
    ds.add_new(0x00091010, "OB", payload)
    buffer = io.BytesIO()
    ds.save_as(buffer)
    sent = buffer.getvalue()
    body, content_type = _raw_multipart(b"slice\xe9.dcm", sent)
    response = client.post("/analyze", data=body, content_type=content_type)
    assert response.status_code == 201, response.get_data(as_text=True)[:300]
    assert response.get_json()["sha256"] == hashlib.sha256(sent).hexdigest()
    assert client.get(f"/analyses/{response.get_json()['id']}/images/original").data == sent
