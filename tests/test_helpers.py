"""The JPEGs every image of an analysis is made of: colours kept, gray stays gray, sizes and qualities as promised."""

import io

import numpy as np
import pytest
from PIL import Image

from backend.utils.helpers import create_thumbnail, encode_jpeg, upload_to_storage
from tests.fixtures.images import decode_data_url, jpeg_quality


def stripes():
    """400 x 300 RGB: red, green and blue bands, as the heatmap's colours are."""
    pixels = np.zeros((300, 400, 3), np.uint8)
    for band in range(3):
        pixels[band * 100 : (band + 1) * 100, :, band] = 255
    return pixels


@pytest.mark.parametrize(
    "image",
    [stripes(), Image.fromarray(stripes()), Image.fromarray(stripes()).convert("RGBA")],
    ids=["array", "RGB image", "RGBA image"],
)
def test_colours_come_back_where_they_were(image):
    decoded = np.asarray(Image.open(io.BytesIO(encode_jpeg(image, 70))).convert("RGB")).astype(int)
    for band in range(3):
        mean = decoded[band * 100 + 20 : (band + 1) * 100 - 20, 20:-20].mean(axis=(0, 1))
        assert mean[band] > 200 and np.delete(mean, band).max() < 60, (band, mean)


def test_gray_stays_one_channel_and_sizes_and_qualities_hold():
    gray = np.tile(np.arange(256, dtype=np.uint8), (300, 2))[:, :500]
    full, thumbnail = decode_data_url(upload_to_storage(gray)), decode_data_url(create_thumbnail(gray))
    assert (full.mode, full.size, jpeg_quality(full)) == ("L", (400, 240), 70)
    assert (thumbnail.mode, thumbnail.size, jpeg_quality(thumbnail)) == ("L", (200, 120), 50)
    back = np.asarray(full.resize((500, 300))).astype(int)
    assert np.abs(back - gray).mean() < 4
