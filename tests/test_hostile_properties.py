"""Property tests (issue 10): for any DICOM header values and any JSON body, the answer is a 201
with a sane analysis or a 4xx JSON error, never a 5xx, and only a 201 adds a stored document.

Hypothesis generates the values; each test uses one app and client (the conftest fixtures) for
all its examples and compares the store's document count before and after every request.
"""

import base64
import functools
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from tests.fixtures.hostile import (
    assert_clean_message,
    assert_sane_analysis,
    ct_pixels,
    ct_png,
    ct_with_pixels,
    post_file,
    stored_count,
)

# Hypothesis caches what it learns under its home directory: keep it out of the working tree.
set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "ct-service-hypothesis"))

# Deterministic (the same examples in CI as here), no example database, and no shrinking, so a
# failing property reports its first counterexample in seconds instead of minutes.
FAST = settings(
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def ct_bytes(**headers) -> bytes:
    """The real CT slice, every 4th row and column (128 x 128: quick to write and read), with raw headers."""
    return ct_with_pixels(ct_pixels()[::4, ::4], **headers)


def check_answer(client, response, before):
    """201 with a sane analysis and one more document, or a clean 4xx JSON error and none."""
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    event(f"{response.status_code} {(response.get_json(silent=True) or {}).get('error', '')}")
    after = stored_count(client)
    if response.status_code == 201:
        body = response.get_json()
        assert_sane_analysis(body)
        assert after == before + 1
        assert client.get(f"/analyses/{body['id']}").status_code == 200
    else:
        assert 400 <= response.status_code < 500, response.status_code
        assert response.is_json, response.get_data(as_text=True)[:200]
        body = response.get_json()
        assert set(body) == {"error", "message"} and isinstance(body["error"], str)
        assert_clean_message(body["message"])
        assert after == before, f"a {response.status_code} stored a document"


# --- DICOM header values ----------------------------------------------------------------------

printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
unsigned_16 = st.one_of(
    st.sampled_from([0, 1, 2, 3, 4, 7, 8, 12, 16, 32, 63, 64, 255, 256, 511, 512, 1024, 4096, 4097, 32768, 65535]),
    st.integers(0, 65535),
)
number_text = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(lambda x: f"{x:g}"),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(
        [
            "nan",
            "NaN",
            "inf",
            "-inf",
            "Infinity",
            "0",
            "-0",
            "0.0",
            "1e400",
            "-1e400",
            "1e-400",
            "",
            " ",
            "1\\2",
            "1,5",
            "0x10",
            "\u00b2",
            "--1",
            "1.",
            ".5",
            "+3",
        ]
    ),
    printable,
)
frames_text = st.one_of(
    st.integers(-5, 10**15).map(str), st.sampled_from(["", "1", "2", "3", "0", "1.5", "abc"]), printable
)

dicom_headers = st.fixed_dictionaries(
    {},
    optional={
        "Rows": unsigned_16,
        "Columns": unsigned_16,
        "BitsAllocated": unsigned_16,
        "BitsStored": unsigned_16,
        "HighBit": unsigned_16,
        "SamplesPerPixel": unsigned_16,
        "PixelRepresentation": st.sampled_from([0, 1, 2, 65535]),
        "NumberOfFrames": frames_text,
        "RescaleSlope": number_text,
        "RescaleIntercept": number_text,
        "WindowCenter": number_text,
        "WindowWidth": number_text,
        "PhotometricInterpretation": st.sampled_from(
            ["MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL", "", "GARBAGE"]
        ),
    },
)
windows = st.sampled_from(["lung", "mediastinal", "bone", "dicom"])


@FAST
@given(headers=dicom_headers, window=windows)
def test_any_dicom_header_values(client, headers, window):
    before = stored_count(client)
    response = post_file(client, ct_bytes(**headers), window=window)
    check_answer(client, response, before)


def mostly(low, high):
    """A plausible DS value three times in four, anything number_text makes otherwise."""
    plausible = st.floats(low, high).map(lambda x: f"{x:.6g}")
    return st.integers(0, 3).flatmap(lambda pick: number_text if pick == 0 else plausible)


@FAST
@given(slope=mostly(0.01, 10), intercept=mostly(-3000, 3000), center=mostly(-1000, 1000), width=mostly(1, 4000))
def test_any_rescale_and_window_values_with_window_dicom(client, slope, intercept, center, width):
    before = stored_count(client)
    data = ct_bytes(RescaleSlope=slope, RescaleIntercept=intercept, WindowCenter=center, WindowWidth=width)
    check_answer(client, post_file(client, data, window="dicom"), before)


# --- JSON bodies ------------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@functools.cache
def _png_b64():
    return base64.b64encode(ct_png((96, 96))).decode()


def usually(good, anything):
    """`good` three times in four, `anything` otherwise: most bodies get far enough to be analysed."""
    return st.integers(0, 3).flatmap(lambda pick: anything if pick == 0 else good)


odd_images = st.one_of(
    json_values,
    st.text(max_size=50),
    st.binary(max_size=60).map(lambda raw: base64.b64encode(raw).decode()),
    st.sampled_from(
        [
            "data:",
            "data:,",
            "data:image/png;base64,",
            "data:;base64,AAAA",
            "====",
            "A",
            "AA==",
            "data:image/png;base64," + "A" * 10,
            "\u0000",
            "\ud7ff" * 5,
        ]
    ),
)
json_bodies = usually(
    st.fixed_dictionaries(
        {"image": usually(st.sampled_from(["valid", "data-url"]), odd_images)},
        optional={
            "filename": st.one_of(st.text(max_size=40), json_values),
            "window": usually(windows, json_values),
            "frame": usually(st.just(0), st.one_of(st.integers(-3, 3), st.floats(), json_values)),
        },
    ),
    json_values,
)


def _materialise(body):
    """Replace the placeholders for a real image by its base64 text."""
    if isinstance(body, dict) and body.get("image") in ("valid", "data-url"):
        payload = _png_b64()
        return {**body, "image": payload if body["image"] == "valid" else "data:image/png;base64," + payload}
    return body


@FAST
@given(body=json_bodies)
def test_any_json_body(client, body):
    before = stored_count(client)
    raw = json.dumps(_materialise(body)).encode()
    check_answer(client, client.post("/analyze", data=raw, content_type="application/json"), before)


@FAST
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_any_bytes_as_a_json_body(client, raw):
    before = stored_count(client)
    check_answer(client, client.post("/analyze", data=raw, content_type="application/json"), before)
