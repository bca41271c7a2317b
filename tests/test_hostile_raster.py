"""Hostile PNG and JPEG (issue 10): damaged CRCs, truncation, headers that claim more than is there,
tiny and blank images, pixel bombs and files that are no image at all.

Each is a real CT slice encoded in memory and then damaged byte by byte. Damaged files are errors,
never padded or grey-filled and analysed; every rejection stores nothing.
"""

import io
import struct

import numpy as np
import pytest
from PIL import Image

from backend.app import create_app
from tests.fixtures.data import covid_ct_dir
from tests.fixtures.hostile import (
    assert_rejected,
    assert_sane_analysis,
    ct_jpeg,
    ct_png,
    jpeg_claiming,
    jpeg_segments,
    png_chunks,
    png_claiming,
    png_from_chunks,
    post_file,
    stored_count,
    traced_peak,
)
from tests.fixtures.uploads import ct_slice, encode


def test_the_undamaged_files_are_still_analysed(client):
    for data, name in [(ct_png(), "slice.png"), (ct_jpeg(), "slice.jpg")]:
        response = post_file(client, data, name)
        assert response.status_code == 201, response.get_data(as_text=True)[:300]
        assert_sane_analysis(response.get_json())
    assert stored_count(client) == 2


# --- PNG CRCs and truncation -----------------------------------------------------------------


def _damaged_png(kind: bytes, damage: str) -> bytes:
    chunks = png_chunks(ct_png())
    chunk = next(c for c in chunks if c[0] == kind)
    if damage == "crc":  # the data intact, its checksum wrong
        chunk[2] ^= 0x00010000
    else:  # one byte of the data changed, the checksum left as it was
        payload = bytearray(chunk[1])
        payload[len(payload) // 2] ^= 0x55
        chunk[1] = bytes(payload)
    return png_from_chunks(chunks, fix_crc=False)


@pytest.mark.parametrize("kind, damage", [(b"IDAT", "crc"), (b"IDAT", "data"), (b"IHDR", "crc")])
def test_png_with_a_bad_crc_is_corrupt(client, kind, damage):
    data = _damaged_png(kind, damage)
    assert data != ct_png() and len(data) == len(ct_png())
    assert_rejected(client, post_file(client, data, "slice.png"), 400, "corrupt_image")


@pytest.mark.parametrize("fraction", [0.005, 0.5, 0.9, 0.99])
def test_truncated_png(client, fraction):
    data = ct_png()
    assert_rejected(client, post_file(client, data[: int(len(data) * fraction)], "cut.png"), 400, "corrupt_image")


@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.9])
@pytest.mark.parametrize("end_marker", [False, True], ids=["cut", "cut+EOI"])
def test_truncated_jpeg(client, fraction, end_marker):
    """Cut mid-scan, with or without an end-of-image marker put back (which lenient decoders grey-fill)."""
    data = ct_jpeg()
    cut = data[: int(len(data) * fraction)] + (b"\xff\xd9" if end_marker else b"")
    assert_rejected(client, post_file(client, cut, "cut.jpg"), 400, "corrupt_image")


# --- Headers that claim more than the file holds ---------------------------------------------


def test_jpeg_claiming_7000_by_7000_with_a_few_bytes_of_scan(tmp_path):
    """With a pixel limit that lets 49 megapixels through, the few bytes of data are still no image."""
    client = create_app({"DATA_DIR": str(tmp_path), "TESTING": True, "MAX_PIXELS": 64_000_000}).test_client()
    data = jpeg_claiming(7000, 7000)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (7000, 7000) and len(data) < 1000
    response, peak = traced_peak(lambda: post_file(client, data, "huge.jpg"))
    assert_rejected(client, response, 400, "corrupt_image")
    assert peak < 512 * 1024**2, f"{peak / 2**20:.0f} MiB traced for a 346-byte file"


def test_jpeg_claiming_7000_by_7000_is_over_the_default_pixel_limit(client):
    assert_rejected(client, post_file(client, jpeg_claiming(7000, 7000), "huge.jpg"), 413, "too_many_pixels")


@pytest.mark.parametrize("size", [(4096, 4096), (1024, 768), (512, 512)])
def test_jpeg_header_claiming_more_rows_than_its_scan_holds(client, size):
    assert_rejected(client, post_file(client, jpeg_claiming(*size), "claim.jpg"), 400, "corrupt_image")


def test_png_header_claiming_more_rows_than_its_data_holds(client):
    assert_rejected(client, post_file(client, png_claiming(4096, 4096), "claim.png"), 400, "corrupt_image")


# --- Pixel limits, without allocating -------------------------------------------------------


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (4097, 4096), (2**31 - 1, 2**31 - 1), (20_000, 1000)])
def test_png_over_max_pixels_is_refused_from_its_header(client, width, height):
    data = png_claiming(width, height)
    assert len(data) < 2000
    response, peak = traced_peak(lambda: post_file(client, data, "bomb.png"))
    assert_rejected(client, response, 413, "too_many_pixels")
    assert peak < 64 * 1024**2, f"{peak / 2**20:.0f} MiB traced refusing a {len(data)}-byte file"


def test_jpeg_over_max_pixels_is_refused_from_its_header(client):
    assert_rejected(client, post_file(client, jpeg_claiming(4097, 4096), "big.jpg"), 413, "too_many_pixels")


def test_the_default_pixel_limit_admits_4096_by_4096(client):
    """MAX_PIXELS defaults to 4096 x 4096: a real image of exactly that size is analysed."""
    big = Image.fromarray(ct_slice()).resize((4096, 4096), Image.Resampling.BILINEAR)
    response = post_file(client, encode(big, "JPEG", quality=75), "4096.jpg")
    assert response.status_code == 201, response.get_data(as_text=True)[:300]


# --- Too small, no content ------------------------------------------------------------------


def test_the_smallest_real_slice_is_analysed(client):
    """The dataset's smallest figure crop (53 x 26) is a real slice: the minimum side stays below it."""
    path = min(
        (p for label in ("COVID", "NonCOVID") for p in (covid_ct_dir() / label).iterdir()),
        key=lambda p: min(Image.open(p).size),
    )
    assert min(Image.open(path).size) < 30
    response = post_file(client, path.read_bytes(), path.name)
    assert response.status_code == 201, response.get_data(as_text=True)[:300]


def _scaled(height, width):
    """The whole real slice scaled to width x height: small, but with the slice's structure."""
    return Image.fromarray(ct_slice()).resize((width, height), Image.Resampling.LANCZOS)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("height, width", [(1, 1), (2, 3), (23, 23), (23, 512), (512, 23), (10, 400)])
def test_tiny_images_are_too_small(client, fmt, height, width):
    data = encode(_scaled(height, width), fmt)
    assert_rejected(client, post_file(client, data, f"tiny.{fmt.lower()}"), 422, "image_too_small")


def test_64_pixels_a_side_is_enough(client):
    image = _scaled(64, 64)
    assert np.asarray(image).std() > 10
    response = post_file(client, encode(image, "PNG"), "64.png")
    assert response.status_code == 201, response.get_data(as_text=True)[:300]


@pytest.mark.parametrize(
    "image, fmt",
    [
        (Image.new("L", (512, 512), 0), "PNG"),
        (Image.new("L", (512, 512), 255), "PNG"),
        (Image.new("L", (512, 512), 128), "JPEG"),
        (Image.new("RGB", (300, 200), (10, 200, 30)), "PNG"),
        (Image.new("I;16", (256, 256), 4000), "PNG"),
        # a real slice under an alpha channel that hides all of it: black once flattened
        (Image.fromarray(np.dstack([ct_slice()] * 3 + [np.zeros((512, 512), np.uint8)])), "PNG"),
    ],
    ids=["black", "white", "grey-jpeg", "colour", "16-bit", "transparent"],
)
def test_images_with_no_content_are_blank(client, image, fmt):
    assert_rejected(client, post_file(client, encode(image, fmt), f"blank.{fmt.lower()}"), 422, "blank_image")


# --- Not an image at all ---------------------------------------------------------------------


def _webp():
    return encode(Image.fromarray(ct_slice()), "WEBP")


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n",
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(200),
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + bytes(100),
        encode(Image.fromarray(ct_slice()), "BMP"),
        encode(Image.fromarray(ct_slice()), "TIFF"),
        _webp(),
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        b"<!DOCTYPE html><html><body>not a scan</body></html>",
        b'{"image": "not really"}',
        b"\x7fELF\x02\x01\x01" + bytes(200),
        b"hello, this is text",
        b"\x89PNX\r\n\x1a\n" + bytes(100),  # almost a PNG signature
    ],
    ids=["pdf", "zip", "gif", "bmp", "tiff", "webp", "svg", "html", "json", "elf", "text", "png-typo"],
)
def test_non_image_bytes_are_unsupported(client, data):
    assert_rejected(client, post_file(client, data, "scan.png"), 415, "unsupported_format")


def test_jpeg_with_a_png_name_and_png_with_a_dicom_name_are_read_by_content(client):
    assert post_file(client, ct_jpeg(), "slice.png").status_code == 201
    assert post_file(client, ct_png(), "slice.dcm").status_code == 201


def test_jpeg_sof_dimensions_of_zero(client):
    data = ct_jpeg((128, 128))
    sof = dict(jpeg_segments(data))[0xC0]
    zero = data[: sof + 5] + struct.pack(">HH", 0, 0) + data[sof + 9 :]
    response = post_file(client, zero, "zero.jpg")
    assert response.status_code in (400, 422)
    assert_rejected(client, response, response.status_code, response.get_json()["error"])
    assert response.get_json()["error"] in {"corrupt_image", "image_too_small"}
