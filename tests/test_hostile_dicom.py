"""Hostile DICOM (issue 10): headers that lie about the pixels, absurd numbers, deep nesting,
deflate bombs, multi-frame files and the `frame` field, 12-bit JPEG Extended.

Every file is the real CT slice 693_UNCR.dcm (or another real file pydicom ships) with headers
altered in memory. A bad file is a 4xx JSON error that stores nothing; never a 5xx, never a
confident analysis of garbage.
"""

import base64
import io
import logging

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import RLELossless

from tests.fixtures.data import dicom_file
from tests.fixtures.hostile import (
    assert_client_error,
    assert_rejected,
    assert_sane_analysis,
    ct_bytes,
    ct_dataset,
    ct_pixels,
    ct_png,
    ct_with_pixels,
    deflate_bomb,
    deflated_dicom,
    lung_window,
    multiframe_ct,
    nested_sequence_dicom,
    post_file,
    stored_count,
    traced_peak,
)
from tests.fixtures.images import decode_data_url
from tests.fixtures.uploads import dicom_bytes


def test_the_unaltered_slice_is_still_analysed(client):
    response = post_file(client, ct_bytes())
    assert response.status_code == 201, response.get_data(as_text=True)[:300]
    assert_sane_analysis(response.get_json())
    assert stored_count(client) == 1


# --- NumberOfFrames -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "-1", "0", "2", "2.5", "NaN", "1e3", "1\\2", "\u00b2"])
def test_non_numeric_or_inconsistent_number_of_frames(client, value):
    """Single-frame pixel data under a NumberOfFrames that is text, not positive, or not 1."""
    assert_rejected(client, post_file(client, ct_bytes(NumberOfFrames=value)), 400, "invalid_dicom_header")


@pytest.mark.parametrize("value", ["2147483648", "4294967296", "99999999999999999999"])
def test_absurd_number_of_frames_is_refused_before_anything_is_allocated(client, value):
    response, peak = traced_peak(lambda: post_file(client, ct_bytes(NumberOfFrames=value)))
    assert (response.status_code, response.get_json()["error"]) in {
        (400, "invalid_dicom_header"),
        (413, "decoded_too_large"),
    }
    assert_rejected(client, response, response.status_code, response.get_json()["error"])
    assert peak < 256 * 1024**2, f"{peak / 2**20:.0f} MiB traced while refusing the file"


def test_number_of_frames_one_written_out_is_fine(client):
    assert post_file(client, ct_bytes(NumberOfFrames="1")).status_code == 201


# --- Rows, Columns, BitsAllocated, BitsStored, SamplesPerPixel against the pixel data ---------


@pytest.mark.parametrize(
    "headers",
    [
        {"Rows": 256},  # twice the data the header describes
        {"Rows": 1024},  # half
        {"Columns": 511},
        {"Rows": 0},
        {"Columns": 0},
        {"BitsAllocated": 8},  # 16-bit samples read as 8-bit
        {"BitsAllocated": 32},
        {"BitsAllocated": 12},
        {"BitsAllocated": 0},
        {"BitsStored": 20},  # more bits stored than allocated
        {"BitsStored": 0},
        {"SamplesPerPixel": 3},
        {"SamplesPerPixel": 0},
        {"Rows": 256, "Columns": 256, "SamplesPerPixel": 4},
    ],
    ids=lambda headers: ",".join(f"{k}={v}" for k, v in headers.items()),
)
def test_image_header_that_disagrees_with_the_pixel_data(client, headers):
    assert_rejected(client, post_file(client, ct_bytes(**headers)), 400, "invalid_dicom_header")


def test_frames_read_as_channels(client):
    """Three frames labelled as one three-sample greyscale frame: the byte count matches, the header lies."""
    ds = ct_dataset()
    pixels = ct_pixels()
    ds.PixelData = np.stack([pixels, pixels[:, ::-1], pixels[::-1, :]]).tobytes()
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 1
    assert ds.get("NumberOfFrames") is None and ds.PhotometricInterpretation == "MONOCHROME2"
    assert_rejected(client, post_file(client, dicom_bytes(ds)), 400, "invalid_dicom_header")


def test_huge_rows_and_columns_are_refused_without_decoding(client):
    response, peak = traced_peak(lambda: post_file(client, ct_bytes(Rows=65535, Columns=65535)))
    assert (response.status_code, response.get_json()["error"]) in {
        (413, "too_many_pixels"),
        (400, "invalid_dicom_header"),
    }
    assert_rejected(client, response, response.status_code, response.get_json()["error"])
    assert peak < 256 * 1024**2


@pytest.mark.parametrize("shape", [(16, 16), (23, 512), (512, 20), (1, 1)])
def test_tiny_dicom_is_too_small(client, shape):
    pixels = ct_pixels()[200 : 200 + shape[0], 100 : 100 + shape[1]]
    assert_rejected(client, post_file(client, ct_with_pixels(pixels)), 422, "image_too_small")


@pytest.mark.parametrize(
    "pixels, window",
    [
        (np.zeros((512, 512)), "lung"),  # -1024 HU everywhere: air
        (np.full((512, 512), 1024), "bone"),  # 0 HU everywhere
        # content, but every value above the lung window's top (150 HU): one value after windowing
        (1024 + 200 + (np.arange(512 * 512).reshape(512, 512) % 800), "lung"),
    ],
)
def test_dicom_with_no_content_after_windowing_is_blank(client, pixels, window):
    assert_rejected(client, post_file(client, ct_with_pixels(pixels), window=window), 422, "blank_image")


def test_content_hidden_by_one_window_shows_in_another(client):
    """The blank check is made after windowing: the same values in the bone window are a real picture."""
    pixels = 1024 + 200 + (np.arange(512 * 512).reshape(512, 512) % 800)
    response = post_file(client, ct_with_pixels(pixels), window="bone")
    assert response.status_code == 201, response.get_data(as_text=True)[:300]


# --- Rescale and window values --------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"RescaleSlope": "nan"},
        {"RescaleSlope": "inf"},
        {"RescaleSlope": "-inf"},
        {"RescaleSlope": "0"},
        {"RescaleSlope": "-0"},
        {"RescaleSlope": "abc"},
        {"RescaleSlope": "1e400"},
        {"RescaleIntercept": "nan"},
        {"RescaleIntercept": "inf"},
        {"RescaleIntercept": "-inf"},
        {"RescaleIntercept": "abc"},
        {"RescaleIntercept": "1e400"},
        {"RescaleIntercept": "--5"},
    ],
    ids=lambda headers: ",".join(f"{k}={v}" for k, v in headers.items()),
)
@pytest.mark.parametrize("window", ["lung", "dicom"])
def test_rescale_values_that_are_not_finite_numbers(client, headers, window):
    assert_rejected(client, post_file(client, ct_bytes(**headers), window=window), 400, "invalid_dicom_header")


def test_rescale_values_with_spaces_are_read_as_numbers(client):
    """DS values may be padded with spaces: defensive parsing must not turn valid files away."""
    plain = post_file(client, ct_bytes()).get_json()
    padded = post_file(client, ct_bytes(RescaleSlope=" 1.0 ", RescaleIntercept="-1024.0 "))
    assert padded.status_code == 201
    assert padded.get_json()["file_url"] == plain["file_url"]


@pytest.mark.parametrize(
    "headers",
    [
        {"WindowWidth": "0"},
        {"WindowWidth": "-100"},
        {"WindowWidth": "abc"},
        {"WindowWidth": "nan"},
        {"WindowWidth": "inf"},
        {"WindowCenter": "abc"},
        {"WindowCenter": "nan"},
        {"WindowCenter": "-inf"},
    ],
    ids=lambda headers: ",".join(f"{k}={v}" for k, v in headers.items()),
)
def test_unusable_window_with_window_dicom(client, headers):
    assert_rejected(client, post_file(client, ct_bytes(**headers), window="dicom"), 400, "invalid_dicom_header")
    # the file's own window is read only when asked for: a named window still works
    response = post_file(client, ct_bytes(**headers), window="lung")
    assert response.status_code == 201, response.get_data(as_text=True)[:300]
    assert_sane_analysis(response.get_json())


# --- Structure: nesting, truncation, junk, transfer syntaxes ---------------------------------


def test_deeply_nested_sequences_are_invalid_dicom(client):
    assert_rejected(client, post_file(client, nested_sequence_dicom(2000)), 400, "invalid_dicom")


def test_shallow_nesting_is_fine(client):
    assert post_file(client, nested_sequence_dicom(5)).status_code == 201


@pytest.mark.parametrize("cut", [200, 1500, 300_000, -1000])
def test_truncated_dicom(client, cut):
    body = assert_client_error(client, post_file(client, ct_bytes()[:cut]))
    assert body["error"] in {"invalid_dicom", "invalid_dicom_header", "no_pixel_data"}


@pytest.mark.parametrize("tail", [b"\xff" * 500, bytes(range(256)) * 8, b"\x08\x00\x10\x00OW\x00\x00\xff\xff\xff\x7f"])
def test_junk_after_the_dicom_preamble(client, tail):
    response = post_file(client, b"\0" * 128 + b"DICM" + tail)
    body = assert_client_error(client, response)
    assert response.status_code == 400 and body["error"] in {"invalid_dicom", "no_pixel_data"}


def test_damaged_compressed_pixel_data(client):
    ds = pydicom.dcmread(dicom_file("693_J2KR.dcm"))
    fragment = next(generate_frames(ds.PixelData, number_of_frames=1))
    noise = np.random.default_rng(1).integers(0, 256, len(fragment) - 300, dtype=np.uint8).tobytes()
    ds.PixelData = encapsulate([fragment[:300] + noise])
    assert_rejected(client, post_file(client, dicom_bytes(ds)), 400, "undecodable_dicom")

    ds = ct_dataset()
    ds.compress(RLELossless)
    fragment = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([fragment[: len(fragment) // 3]])
    assert_rejected(client, post_file(client, dicom_bytes(ds)), 400, "undecodable_dicom")


def test_transfer_syntax_without_a_decoder_is_named(client):
    ds = ct_dataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 Main Profile
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(1000)])
    ds["PixelData"].VR = "OB"
    body = assert_rejected(client, post_file(client, dicom_bytes(ds)), 415, "unsupported_transfer_syntax")
    assert "1.2.840.10008.1.2.4.100" in body["message"]


def test_deflate_bomb_is_refused_before_it_is_inflated(client):
    """About 2 MB on the wire, 2 GiB inflated: refused while inflating, without holding the result."""
    bomb = deflate_bomb()
    assert len(bomb) < 3 * 1024**2
    response, peak = traced_peak(lambda: post_file(client, bomb))
    assert_rejected(client, response, 413, "decoded_too_large")
    assert peak < 768 * 1024**2, f"{peak / 2**20:.0f} MiB traced while refusing a deflate bomb"


def test_small_deflated_dicom_is_analysed_like_the_plain_file(client):
    plain = post_file(client, ct_bytes()).get_json()
    data = deflated_dicom(ct_dataset())
    assert len(data) < 300_000 and b"1.2.840.10008.1.2.1.99" in data[:400]
    response = post_file(client, data)
    assert response.status_code == 201, response.get_data(as_text=True)[:300]
    assert response.get_json()["file_url"] == plain["file_url"]


@pytest.mark.timeout(60)
def test_bytes_after_the_deflate_stream_end_do_not_stall_the_size_check(client):
    """pydicom writes a pad byte after the stream; the inflate-size check once looped on such bytes forever."""
    data = deflated_dicom(ct_dataset()) + b"\x00" * 3
    response = post_file(client, data)
    assert response.status_code in (201, 400), response.get_data(as_text=True)[:300]


def test_damaged_deflate_stream(client):
    data = deflated_dicom(ct_dataset())
    assert_client_error(client, post_file(client, data[: len(data) // 2]))
    garbage = data[: data.index(b"1.2.840.10008.1.2.1.99") + 200] + bytes(range(256)) * 40
    assert_client_error(client, post_file(client, garbage))


def test_12_bit_jpeg_extended_is_decoded(client, caplog):
    """Older CT archives use JPEG Extended (process 2 & 4, 12-bit): analysed, with no traceback in the log."""
    data = dicom_file("JPGExtended.dcm").read_bytes()
    assert pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.51"
    with caplog.at_level(logging.DEBUG):
        response = post_file(client, data, "old-archive.dcm")
    assert response.status_code == 201, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert_sane_analysis(body)
    assert decode_data_url(body["file_url"]).size == (100, 400)  # 256 x 1024, longer side 400
    assert not [record for record in caplog.records if record.exc_info], "a traceback was logged"


# --- Multi-frame and the `frame` field --------------------------------------------------------


def _closest_frame(body, frames):
    """Which frame the returned slice shows: mean difference to each frame's lung-window picture."""
    returned = np.asarray(decode_data_url(body["file_url"])).astype(float)
    differences = [
        np.abs(
            returned
            - np.asarray(Image.fromarray(lung_window(frame)).resize((400, 400), Image.Resampling.LANCZOS)).astype(float)
        ).mean()
        for frame in frames
    ]
    best = int(np.argmin(differences))
    assert differences[best] < 3 and sorted(differences)[1] > 10, differences
    return best


def test_multiframe_default_is_the_middle_frame(client):
    data, frames = multiframe_ct()
    response = post_file(client, data)
    assert response.status_code == 201
    assert _closest_frame(response.get_json(), frames) == 1


@pytest.mark.parametrize("frame", [0, 1, 2])
def test_frame_field_picks_the_frame_that_is_analysed(client, frame):
    data, frames = multiframe_ct()
    multipart = post_file(client, data, frame=str(frame))
    assert multipart.status_code == 201, multipart.get_data(as_text=True)[:300]
    assert _closest_frame(multipart.get_json(), frames) == frame
    as_json = client.post(
        "/analyze", json={"image": base64.b64encode(data).decode(), "filename": "mf.dcm", "frame": frame}
    )
    assert as_json.status_code == 201, as_json.get_data(as_text=True)[:300]
    assert _closest_frame(as_json.get_json(), frames) == frame
    assert as_json.get_json()["prediction"] == multipart.get_json()["prediction"]


def test_frames_get_their_own_predictions(client):
    data, _ = multiframe_ct()
    bodies = [post_file(client, data, frame=str(frame)).get_json() for frame in range(3)]
    assert len({body["file_url"] for body in bodies}) == 3


@pytest.mark.parametrize("frame", ["3", "-1", "100", "99999999999999999999"])
def test_frame_out_of_range(client, frame):
    data, _ = multiframe_ct()
    body = assert_rejected(client, post_file(client, data, frame=frame), 400, "invalid_frame")
    if frame != "-1":  # a whole number past the last frame: the user needs the valid range
        assert "0" in body["message"] and "2" in body["message"], "the message should give the valid range"


@pytest.mark.parametrize("frame", ["abc", "1.5", "\u0662", "0x1"])
def test_frame_that_is_not_a_whole_number(client, frame):
    data, _ = multiframe_ct()
    assert_rejected(client, post_file(client, data, frame=frame), 400, "invalid_frame")


def test_frame_of_a_single_frame_image(client):
    assert post_file(client, ct_bytes(), frame="0").status_code == 201
    assert_rejected(client, post_file(client, ct_bytes(), frame="1"), 400, "invalid_frame", stored_before=1)
    assert_rejected(client, post_file(client, ct_png(), "slice.png", frame="1"), 400, "invalid_frame", stored_before=1)


def test_real_enhanced_multiframe_ct_frames(client):
    """eCT_Supplemental.dcm (2 frames, enhanced CT): frame 0 is another slice than the default (1)."""
    data = dicom_file("eCT_Supplemental.dcm").read_bytes()
    default = post_file(client, data, window="mediastinal").get_json()
    first = post_file(client, data, window="mediastinal", frame="0").get_json()
    second = post_file(client, data, window="mediastinal", frame="1").get_json()
    assert default["file_url"] == second["file_url"] != first["file_url"]
    assert_rejected(client, post_file(client, data, frame="2"), 400, "invalid_frame", stored_before=3)
