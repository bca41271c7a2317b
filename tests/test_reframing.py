"""The served model judges the lungs, not the frame: re-framing a real slice (a border, a slightly different crop,
another size) barely moves P(COVID) wherever the service judges the slice. The shortcut audit
(weights/shortcuts.json) shows how much the frame alone gives away in the training sources; this is the check
that the weights do not use it."""

import cv2
import numpy as np

from backend.imaging.decode import decode_image
from backend.ml import data
from backend.ml.classifier import LOW_RESOLUTION
from tests.fixtures.data import covid_ct_dir, ct_series, sars_cov_2_ct_dir

TOLERANCE = 0.10  # the most P(COVID) may move for one slice under one re-framing
MEAN_TOLERANCE = 0.03  # the most it may move on average over all slices and re-framings


def real_slices():
    """Two slices per class of each training source (fixed, spread over the names) and three of the DICOM series."""
    out = {}
    for folder in (covid_ct_dir(), sars_cov_2_ct_dir()):
        items = data.list_images([folder])
        for label in ("COVID", "NonCOVID"):
            keys = [key for key, lab in items if lab == label]
            for key in keys[len(keys) // 3 :: len(keys) // 3][:2]:
                out[key] = data.load_gray([folder], key)
    series = ct_series()
    for path in (series[9], series[15], series[21]):
        out[f"ct-series/{path.name}"] = decode_image(path.read_bytes())
    return out


def reframings(gray):
    h, w = gray.shape
    corner = int(np.median(np.r_[gray[:4, :4].ravel(), gray[-4:, -4:].ravel()]))
    return {
        "black border": cv2.copyMakeBorder(gray, h // 12, h // 12, w // 12, w // 12, cv2.BORDER_CONSTANT, value=0),
        "border of its own background": cv2.copyMakeBorder(
            gray, h // 6, h // 20, w // 10, w // 5, cv2.BORDER_CONSTANT, value=corner
        ),
        "cropped a little": gray[h // 25 : h - h // 50, w // 40 : w - w // 25],
        "smaller": cv2.resize(gray, (w * 2 // 3, h * 2 // 3), interpolation=cv2.INTER_AREA),
        "larger": cv2.resize(gray, (w * 3 // 2, h * 3 // 2), interpolation=cv2.INTER_CUBIC),
    }


def test_p_covid_barely_moves_when_a_real_slice_is_reframed(classifier):
    """Compared where the service judges both framings; the only re-framing it may refuse to judge is one whose
    lungs are (or become) fewer pixels across than the resolution floor (`low_resolution`)."""
    moves, refused = {}, {}
    for key, gray in real_slices().items():
        original = classifier.predict(gray)
        for name, framed in reframings(gray).items():
            again = classifier.predict(framed)
            if original.assessable and again.assessable:
                moves[key, name] = abs(again.probabilities["COVID"] - original.probabilities["COVID"])
            else:
                refused[key, name] = {original.reason, again.reason} - {None}
    worst = max(moves, key=moves.get)
    assert len(moves) + len(refused) == 5 * 11
    assert all(reasons == {LOW_RESOLUTION} for reasons in refused.values()), refused
    assert len(moves) >= 0.85 * 5 * 11  # the floor leaves all but the smallest figure crops judged
    assert moves[worst] <= TOLERANCE, (worst, moves[worst])
    assert np.mean(list(moves.values())) <= MEAN_TOLERANCE
