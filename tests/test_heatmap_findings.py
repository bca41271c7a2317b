"""The heatmap picture and the findings read from it."""

import numpy as np
import pytest

from backend.analysis.findings import CAUTION, LOW_RESOLUTION, NO_LUNG, NOT_CT, describe
from backend.imaging import anatomy, heatmap
from tests.fixtures.uploads import ct_slice


def test_activation_is_upsampled_relud_normalised_and_kept_to_the_body():
    cam = np.array([[-1.0, 2.0], [4.0, 0.0]], np.float32)
    body = np.ones((40, 60), bool)
    body[:, :10] = False
    activation = heatmap.activation_map(cam, (40, 60), body)
    assert activation.shape == (40, 60) and activation.dtype == np.float32
    assert activation.min() == 0 and activation.max() == pytest.approx(1.0)
    assert activation[:, :10].max() == 0


def test_overlay_colours_the_body_only():
    gray = ct_slice()
    body = anatomy.body_mask(gray)
    assert 0.2 < body.mean() < 0.95  # a head inside the scanner's field: not the air around it
    activation = np.zeros(gray.shape, np.float32)
    activation[200:260, 200:260] = 1.0
    picture = heatmap.overlay(gray, activation, body)
    assert picture.shape == gray.shape + (3,) and picture.dtype == np.uint8
    outside = ~body
    assert np.array_equal(picture[outside], np.repeat(gray[outside][:, None], 3, axis=1))
    hot = picture[230, 230].astype(int)
    assert hot[0] > hot[2]  # high activation is red in JET


@pytest.mark.parametrize("column, side", [(20, "patient's right"), (380, "patient's left")])
def test_peak_side_follows_radiological_convention(column, side):
    body = np.ones((200, 400), bool)
    activation = np.zeros((200, 400), np.float32)
    activation[150, column] = 1.0
    findings, _ = describe("COVID", 0.9, {"COVID": 0.9, "NonCOVID": 0.1}, activation, body, body)
    assert side in findings[1] and "posterior" in findings[1] and "peripheral" in findings[1]
    assert findings[2].startswith("0% of the lung field")


def test_recommendations_follow_label_and_confidence():
    body = np.ones((10, 10), bool)
    activation = np.ones((10, 10), np.float32)
    _, sure_covid = describe("COVID", 0.95, {"COVID": 0.95, "NonCOVID": 0.05}, activation, body, body)
    _, unsure = describe("COVID", 0.6, {"COVID": 0.6, "NonCOVID": 0.4}, activation, body, body)
    _, sure_clear = describe("NonCOVID", 0.9, {"COVID": 0.1, "NonCOVID": 0.9}, activation, body, body)
    assert "RT-PCR" in sure_covid[0] and "uncertain" in unsure[0] and "does not rule out" in sure_clear[0]
    assert all(advice[-1] == CAUTION for advice in (sure_covid, unsure, sure_clear))


@pytest.mark.parametrize(
    "reason, sentence", [("no_lung_field", NO_LUNG), ("not_chest_ct", NOT_CT), ("low_resolution", LOW_RESOLUTION)]
)
def test_a_slice_the_model_did_not_assess_gets_no_findings_about_disease(reason, sentence):
    """Its label is still rated (compatibility), but findings and recommendations say it was not assessed and say
    nothing about activation, lung coverage or COVID-19 patterns."""
    body = np.ones((10, 10), bool)
    activation = np.ones((10, 10), np.float32)
    findings, advice = describe(
        "COVID", 0.95, {"COVID": 0.95, "NonCOVID": 0.05}, activation, body, body, 0.3, reason=reason
    )
    assert findings[0].startswith("The model rates this slice COVID") and findings[1:] == [sentence]
    assert advice == [sentence, CAUTION] and "not assessed" in sentence
    assert not any("activation" in line or "RT-PCR" in line for line in findings + advice)


def test_an_assessed_slice_without_a_lung_mask_still_gets_its_peak():
    body = np.ones((10, 10), bool)
    activation = np.zeros((10, 10), np.float32)
    activation[2, 2] = 1.0
    findings, _ = describe("NonCOVID", 0.9, {"COVID": 0.1, "NonCOVID": 0.9}, activation, body, np.zeros_like(body))
    assert "activation peaks" in findings[1] and len(findings) == 2
