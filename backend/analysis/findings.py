"""Findings and recommendations derived from this slice's prediction and activation map.

Axial CT is shown in radiological convention: the patient's right is on the image's left, and
the top of the image is anterior.
"""

import numpy as np

HOT = 0.5  # "high activation": at least half of the map's peak
CONFIDENT = 0.8
CAUTION = (
    "Research use only, not for diagnosis: this model was trained on 8-bit figure crops from publications "
    "and PACS screenshots from one hospital group, not on Hounsfield-unit scans, and has not been clinically "
    "validated."
)

# What a slice the model did not assess gets instead of findings about disease, by `prediction.reason`.
NOT_CT = (
    "This image does not look like the axial chest CT slices the model was trained on (its input check "
    "flags it): it was not assessed, and the label above is meaningless for it. Upload one axial chest CT "
    "slice."
)
NO_LUNG = (
    "This slice shows too little lung to judge (above the lung apices, below the bases, or only a sliver of "
    "lung): it was not assessed, and the label above is meaningless for it. Judge the study on slices "
    "through the lungs."
)
LOW_RESOLUTION = (
    "The lungs in this image are too few pixels across to judge (a thumbnail or a small figure): it was not "
    "assessed, and the label above is meaningless for it. Upload the slice at its full resolution."
)
NOT_ASSESSED = {"not_chest_ct": NOT_CT, "no_lung_field": NO_LUNG, "low_resolution": LOW_RESOLUTION}


def describe(
    label, confidence, probabilities, activation, body, lungs, threshold=None, in_distribution=True, reason=None
):
    """(findings, recommendations), each a list of plain sentences.

    threshold: the operating point on P(COVID) that decided the label, when it is not 0.5.
    reason: why the model did not assess the slice (`Prediction.reason`), or None; in_distribution False
    alone means "not_chest_ct". A slice not assessed gets the rating and the reason, nothing about disease.
    """
    odds = ", ".join(f"{name} {p:.0%}" for name, p in probabilities.items())
    findings = [f"The model rates this slice {label} with {confidence:.0%} confidence ({odds})."]
    if threshold is not None:
        findings[0] += (
            f" Its screening threshold calls COVID from a COVID probability of {threshold:.0%} "
            "upwards, to miss few COVID slices at the cost of more false alarms."
        )
    reason = reason or (None if in_distribution else "not_chest_ct")
    if reason is not None:
        return findings + [NOT_ASSESSED[reason]], [NOT_ASSESSED[reason], CAUTION]
    if activation.max() > 0:
        findings.append(f"The activation peaks in the {_peak_location(activation, body)}.")
        if lungs.any():
            hot_fraction = float((activation >= HOT)[lungs].mean())
            spread = "focal" if hot_fraction < 0.15 else "patchy" if hot_fraction < 0.4 else "diffuse"
            findings.append(
                f"{hot_fraction:.0%} of the lung field shows high activation "
                f"(at least half of the peak): a {spread} pattern."
            )
    else:
        findings.append("The model shows no positive activation for its prediction on this slice.")
    return findings, _recommendations(label, confidence)


def _peak_location(activation, body):
    row, col = np.unravel_index(int(np.argmax(activation)), activation.shape)
    rows, cols = np.nonzero(body)
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    x = (col - (left + right) / 2) / max(1, (right - left) / 2)  # -1 image left .. +1 image right
    y = (row - (top + bottom) / 2) / max(1, (bottom - top) / 2)  # -1 top .. +1 bottom
    side = "patient's right" if x < 0 else "patient's left"
    height = "anterior (upper)" if y < 0 else "posterior (lower)"
    zone = "central" if max(abs(x), abs(y)) < 0.5 else "peripheral"
    image_side = "left" if x < 0 else "right"
    return f"{side}, {height}, {zone} part of the chest (image {image_side})"


def _recommendations(label, confidence):
    if confidence < CONFIDENT:
        advice = [
            f"The model is uncertain ({confidence:.0%}); do not act on this result. Review the "
            "whole study, not this single slice, with a radiologist."
        ]
    elif label == "COVID":
        advice = [
            "The model associates this slice with COVID-19 pneumonia patterns: confirm with "
            "RT-PCR and clinical findings, and have a radiologist review the full study.",
            "Check the highlighted region for ground-glass opacities or consolidation.",
        ]
    else:
        advice = [
            "The model finds no COVID-19 pattern in this slice. That does not rule out "
            "infection or other disease: correlate with clinical findings and other slices."
        ]
    return advice + [CAUTION]
