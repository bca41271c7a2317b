"""The lung field on real slices: which slices show lung to judge, where the crop goes, and one intensity scale
for a DICOM in Hounsfield units, a PACS screenshot and a paper's figure. Pure image operations: the imaging
package loads no model code."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

from backend.imaging import intensity, lungfield
from backend.imaging.decode import decode_image
from backend.ml import data
from tests.fixtures.data import REPO, covid_ct_dir, ct_series, sars_cov_2_ct_dir


@pytest.fixture(scope="module")
def series():
    return [decode_image(path.read_bytes()) for path in ct_series()]  # the service's default: the lung window


def test_slices_above_the_apices_and_below_the_bases_are_not_assessable_the_middle_ones_are(series):
    """The series runs from the neck (no lung) to the upper abdomen (a sliver of lung behind the liver, bowel gas in
    front): its first and last slices have no lung to judge, the middle ones do."""
    assessable = [lungfield.find(gray).assessable for gray in series]
    assert len(assessable) == 30
    assert not any(assessable[:2]) and not any(assessable[-2:])
    middle = len(series) // 5, len(series) - len(series) // 5
    assert all(assessable[middle[0] : middle[1]])
    # Assessable slices form one run: lung appears once going down, and disappears once.
    runs = np.flatnonzero(np.diff(np.r_[0, np.array(assessable, int), 0]))
    assert len(runs) == 2


def test_every_training_slice_shows_lung():
    """The training sets are lung slices: nearly all of them must count as assessable (a few crops of a single
    diseased lung may not)."""
    for folder, floor in ((covid_ct_dir(), 0.97), (sars_cov_2_ct_dir(), 0.97)):
        items = data.list_images([folder])[::10]
        assessable = [lungfield.find(data.load_gray([folder], key)).assessable for key, _ in items]
        assert np.mean(assessable) >= floor, folder


def _box_in_content(field, offset, factor):
    """A box of a re-framed slice in the original slice's pixels."""
    top, bottom, left, right = field.box
    oy, ox = offset
    return np.array([(top - oy) / factor, (bottom - oy) / factor, (left - ox) / factor, (right - ox) / factor])


@pytest.mark.parametrize("index", [8, 15, 22])
def test_the_lung_box_follows_the_anatomy_not_the_frame(series, index):
    """Padded with a black border, cropped at the edges of the field of view, or rescaled, the slice's lung box
    covers the same anatomy (within 4 % of the slice's side)."""
    gray = series[index]
    h, w = gray.shape
    reference = np.array(lungfield.find(gray).box, float)
    framings = {
        "padded": (cv2.copyMakeBorder(gray, 60, 20, 40, 80, cv2.BORDER_CONSTANT, value=0), (60, 40), 1.0),
        "cropped": (gray[30 : h - 10, 20 : w - 25], (-30, -20), 1.0),
        "rescaled": (cv2.resize(gray, (w * 3 // 5, h * 3 // 5), interpolation=cv2.INTER_AREA), (0, 0), 0.6),
    }
    for name, (framed, offset, factor) in framings.items():
        moved = _box_in_content(lungfield.find(framed), offset, factor)
        assert np.abs(moved - reference).max() <= 0.04 * max(h, w), name


def test_a_border_of_one_colour_is_not_part_of_the_slice():
    """A figure cropped inside the chest wall or a PACS screenshot, padded with a border of one colour (a paper's
    margin, a letterbox): its lungs are found as without the border, and the crop stays on the slice. Before
    round 12 (SELECTION.md) the lungs of a padded figure were often missed, or the crop took in the border.
    Within 5 % of the side: a figure's own dark edge rows merge with a black border."""
    for folder in (covid_ct_dir(), sars_cov_2_ct_dir()):
        for key, _ in data.list_images([folder])[::40]:
            gray = data.load_gray([folder], key)
            h, w = gray.shape
            field = lungfield.find(gray)
            own = int(np.median(np.r_[gray[0], gray[-1], gray[:, 0], gray[:, -1]]))
            top, bottom, left, right = h // 8, h // 20, w // 12, w // 6
            for colour in (0, own, 255):
                padded = cv2.copyMakeBorder(gray, top, bottom, left, right, cv2.BORDER_CONSTANT, value=colour)
                moved = lungfield.find(padded)
                box = np.array(moved.box) - (top, top, left, left)
                assert np.abs(box - field.box).max() <= 0.05 * max(h, w), (key, colour)
                assert abs(moved.share - field.share) <= 0.03 and moved.assessable == field.assessable, (key, colour)


def _lung_window_crop(gray):
    field = lungfield.find(gray)
    top, bottom, left, right = field.box
    return cv2.resize(gray[top:bottom, left:right], (224, 224), interpolation=cv2.INTER_AREA), field


def test_standardised_intensity_does_not_depend_on_the_window(series):
    """The same Hounsfield units shown through another lung window (as a PACS screenshot or a paper would show
    them) look alike once standardised: the two anchors land on the same gray levels."""
    from pydicom import dcmread

    path = ct_series()[15]
    ds = dcmread(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    served, field = _lung_window_crop(series[15])
    low = -500 - 1100 / 2  # W1100/L-500: a narrower lung window, darker lungs
    other = np.rint(np.clip((hu - low) / 1100, 0, 1) * 255).astype(np.uint8)
    crop, other_field = _lung_window_crop(other)
    assert field.levels and other_field.levels
    before = np.abs(served.astype(float) - crop).mean()
    after = np.abs(
        intensity.standardise(served, field.levels).astype(float) - intensity.standardise(crop, other_field.levels)
    ).mean()
    assert before > 15 and after < before / 3
    lung, tissue = field.levels
    assert abs(lung - intensity.LUNG_LEVEL) < 15 and abs(tissue - intensity.TISSUE_LEVEL) < 15  # HU: the targets


def test_standardise_moves_the_anchors_to_fixed_levels():
    gray = np.arange(256, dtype=np.uint8)[None].repeat(4, 0)
    out = intensity.standardise(gray, (40.0, 200.0))
    assert out[0, 40] == intensity.LUNG_LEVEL and out[0, 200] == intensity.TISSUE_LEVEL
    assert np.all(np.diff(out[0].astype(int)) >= 0)  # one linear map, clipped: order is kept
    assert intensity.standardise(gray, None) is gray


@pytest.mark.slow
def test_imaging_loads_no_model_code():
    """Imaging is below the model: its modules (and the decoder) must not import torch, Flask or backend.ml."""
    modules = "backend.imaging.lungfield, backend.imaging.intensity, backend.imaging.anatomy"
    code = (
        f"import sys, {modules}; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'flask') "
        "or m.startswith('backend.ml')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
    code = (
        "import sys, backend.imaging.decode; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith('backend.ml')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
