"""Decoding: format by content, DICOM to Hounsfield units and windows, every pixel layout users send."""
import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import RLELossless

from backend.errors import InvalidInput
from backend.imaging.decode import decode_image
from backend.imaging.limits import Limits
from tests.fixtures.data import covid_ct_image, dicom_file
from tests.fixtures.uploads import ct_slice, dicom_bytes, encode


def hounsfield(name):
    ds = pydicom.dcmread(dicom_file(name))
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_lung_window_maps_hounsfield_units():
    gray = decode_image(dicom_file("693_UNCR.dcm").read_bytes())
    hu = hounsfield("693_UNCR.dcm")
    expected = np.rint((np.clip(hu, -1350, 150) + 1350) * 255 / 1500)
    assert gray.dtype == np.uint8 and gray.shape == (512, 512)
    assert np.array_equal(gray, expected.astype(np.uint8))


@pytest.mark.parametrize("window, width, level", [("mediastinal", 350, 50), ("bone", 1800, 400)])
def test_named_windows(window, width, level):
    gray = decode_image(dicom_file("693_UNCR.dcm").read_bytes(), window=window)
    low = level - width / 2
    expected = np.rint((np.clip(hounsfield("693_UNCR.dcm"), low, low + width) - low) * 255 / width)
    assert np.array_equal(gray, expected.astype(np.uint8))


def test_dicom_window_uses_the_files_own():
    data = dicom_file("693_UNCR.dcm").read_bytes()
    own = decode_image(data, window="dicom")
    assert not np.array_equal(own, decode_image(data, window="lung"))
    ds = pydicom.dcmread(io.BytesIO(data))
    center, width = float(ds.WindowCenter), float(ds.WindowWidth)  # 40 / 400: soft tissue
    hu = hounsfield("693_UNCR.dcm")
    assert own[hu < center - width].max() == 0 and own[hu > center + width].min() == 255


@pytest.mark.parametrize("name", ["693_J2KR.dcm", "bad_sequence.dcm"])
def test_compressed_ct_decodes(name):
    """JPEG 2000 (lossless, same pixels as 693_UNCR) and JPEG lossless process 14 CT."""
    gray = decode_image(dicom_file(name).read_bytes())
    assert gray.shape == (512, 512) and gray.std() > 10
    if name == "693_J2KR.dcm":
        assert np.array_equal(gray, ct_slice())


def test_rle_compressed_ct_decodes_to_the_same_pixels():
    ds = pydicom.dcmread(dicom_file("693_UNCR.dcm"))
    ds.compress(RLELossless)
    assert np.array_equal(decode_image(dicom_bytes(ds)), ct_slice())


def test_multiframe_uses_the_middle_frame():
    data = dicom_file("eCT_Supplemental.dcm").read_bytes()
    ds = pydicom.dcmread(io.BytesIO(data))
    frames = ds.pixel_array
    assert frames.shape[0] == 2
    gray = decode_image(data, window="mediastinal")
    hu = frames[1].astype(np.float64) - 1024  # shared functional group: slope 1, intercept -1024
    expected = np.rint((np.clip(hu, -125, 225) + 125) * 255 / 350).astype(np.uint8)
    assert np.array_equal(gray, expected)


def test_monochrome1_is_inverted():
    ds = pydicom.dcmread(dicom_file("693_UNCR.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    assert np.array_equal(decode_image(dicom_bytes(ds)), 255 - ct_slice())


def test_dicom_without_preamble():
    data = dicom_file("693_UNCR.dcm").read_bytes()
    assert data[128:132] == b"DICM"
    assert np.array_equal(decode_image(data[132:]), ct_slice())


@pytest.mark.parametrize("implicit", [True, False])
def test_a_bare_data_set_without_the_part_10_header(implicit):
    """No preamble, no file meta, as older systems write: read in the encoding it is in, and decoded."""
    part10 = pydicom.dcmread(dicom_file("693_UNCR.dcm"))
    bare = pydicom.filebase.DicomBytesIO()
    bare.is_little_endian, bare.is_implicit_VR = True, implicit
    pydicom.filewriter.write_dataset(bare, pydicom.Dataset(part10))
    assert bare.getvalue()[:4] == b"\x08\x00\x05\x00"  # the first element of the data set itself
    assert np.array_equal(decode_image(bare.getvalue()), ct_slice())


def test_png_variants_of_a_real_slice():
    gray = ct_slice()
    as16 = Image.fromarray(gray.astype(np.uint16) * 257)  # 16-bit grey PNG
    assert np.array_equal(decode_image(encode(as16, "PNG")), gray)
    palette = Image.fromarray(gray).convert("P")  # palette PNG: greys map to themselves
    assert np.abs(decode_image(encode(palette, "PNG")).astype(int) - gray).max() <= 8
    rgb = Image.fromarray(np.stack([gray] * 3, axis=-1))
    assert np.array_equal(decode_image(encode(rgb, "PNG")), gray)


def test_transparency_is_flattened_on_black():
    gray = ct_slice()
    alpha = np.full(gray.shape, 255, np.uint8)
    alpha[:, :256] = 0  # left half fully transparent
    rgba = Image.fromarray(np.dstack([gray, gray, gray, alpha]))
    decoded = decode_image(encode(rgba, "PNG"))
    assert decoded[:, :256].max() == 0
    assert np.array_equal(decoded[:, 256:], gray[:, 256:])


def test_cmyk_jpeg_and_jpeg_named_png():
    gray = ct_slice()
    cmyk = Image.fromarray(gray).convert("CMYK")
    assert np.abs(decode_image(encode(cmyk, "JPEG", quality=95)).astype(int) - gray).mean() < 3
    jpeg = encode(Image.fromarray(gray), "JPEG", quality=95)
    assert decode_image(jpeg).shape == gray.shape  # the name "slice.png" never reaches the decoder


def test_exif_orientation_is_applied():
    gray = ct_slice()[:, :300]  # 512 x 300, not square
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    decoded = decode_image(encode(Image.fromarray(gray), "JPEG", exif=exif.tobytes(), quality=95))
    assert decoded.shape == (300, 512)


def test_large_photo_decodes_at_reduced_scale():
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), np.uint8))
    decoded = decode_image(encode(photo, "JPEG", quality=80))
    assert max(decoded.shape) <= 2048 and decoded.shape[1] / decoded.shape[0] == pytest.approx(4 / 3, rel=0.01)


def test_real_dataset_slice():
    path = covid_ct_image("COVID", 0)
    gray = decode_image(path.read_bytes())
    with Image.open(path) as original:
        assert gray.shape == (original.height, original.width)


@pytest.mark.parametrize("data, status, code", [
    (b"", 400, "empty_file"),
    (b"hello, this is text", 415, "unsupported_format"),
    (b"GIF89a" + bytes(100), 415, "unsupported_format"),
])
def test_not_an_image(data, status, code):
    with pytest.raises(InvalidInput) as error:
        decode_image(data)
    assert (error.value.status, error.value.code) == (status, code)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image(fmt):
    data = encode(Image.fromarray(ct_slice()), fmt)
    with pytest.raises(InvalidInput) as error:
        decode_image(data[: len(data) // 2])
    assert (error.value.status, error.value.code) == (400, "corrupt_image")


def test_dicom_without_pixel_data():
    with pytest.raises(InvalidInput) as error:
        decode_image(dicom_file("rtplan.dcm").read_bytes())
    assert (error.value.status, error.value.code) == (400, "no_pixel_data")


def test_too_many_pixels():
    for data in (encode(Image.fromarray(ct_slice()), "PNG"), dicom_file("693_UNCR.dcm").read_bytes()):
        with pytest.raises(InvalidInput) as error:
            decode_image(data, limits=Limits(max_pixels=512 * 511))
        assert (error.value.status, error.value.code) == (413, "too_many_pixels")

