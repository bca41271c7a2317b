"""A study's slices through the model, and the study's answer: aggregation, key slices, findings, its document.

No request, no queue, no store: `analyse_slices` is one part of a batch (decode, one forward pass, each
slice's images through the same pipeline as POST /analyze), `StudyAnswer` gathers the parts' outcomes in
slice order and gives the study's prediction, key slices, findings and recommendations.

The aggregation rule (README, model card): the study's P(COVID) is the **mean of the calibrated P(COVID)
of its top 10 % counted slices (at least 3, or all when fewer)**; a slice counts when it is assessable and
shows at least half as much lung as the series' slice with the most (near the apices and the bases, partial
volume with the diaphragm, the liver and the chest wall looks like consolidation to the model: on the real
series in ../shared/data/ct-series, every slice over the threshold lies there). Max pooling lets one noisy slice decide
a whole study (a series of 300 slices has 300 chances of a false alarm); the mean over every slice dilutes
disease that involves only part of the lungs, as COVID-19 pneumonia often does (peripheral, lower lobes);
the share of positive slices depends on the slice threshold twice. The top-k mean is what per-scan COVID
CT systems that pool slice scores use, robust to a single outlier yet driven by the slices with findings.
Slices the model cannot assess (model v3's `assessable`: no lung field, not chest CT) never count: a
study is never called COVID because of slices without lungs, and a study with no assessable slice is not
called COVID, its findings saying that nothing could be assessed.
"""

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from backend.analysis.batches import on_cores
from backend.analysis.findings import CAUTION
from backend.analysis.pipeline import describe_slice, predict_slices
from backend.errors import InvalidInput
from backend.imaging.limits import Limits
from backend.ml.classifier import Classifier
from backend.ml.preprocess import LABELS
from backend.store.docsize import stored_document_size
from backend.utils.helpers import create_thumbnail

TOP_FRACTION = 0.10
MIN_TOP = 3
MAX_KEY_SLICES = 8
CENTRAL_SHARE = 0.5  # a slice counts when its lung share is at least this fraction of the series' largest
KEY_POOL = 4 * MAX_KEY_SLICES  # key candidates kept while the series' largest lung share is not yet known
AGGREGATION = (
    "mean P(COVID) of the top 10% of counted slices (at least 3, or all when fewer); a slice counts when it is "
    "assessable and shows at least half the lung area of the series' slice with the most"
)
# Key-slice thumbnails are re-made at these settings in turn while the document is over its budget.
SHRINK_STEPS = [
    ((200, 200), 50),
    ((200, 200), 40),
    ((200, 200), 30),
    ((160, 160), 30),
    ((120, 120), 25),
    ((80, 80), 20),
]
UNCERTAIN_MARGIN = 0.1  # a study score this close to the threshold is reported as uncertain
REASONS = {
    "no_lung_field": "no lung field",
    "not_chest_ct": "not like chest CT",
    "low_resolution": "lungs too few pixels across",
    None: "not assessable",
}


@dataclass
class SliceOutcome:
    """One slice's answer, as the study document keeps it (small numbers only)."""

    index: int
    probability: float | None  # calibrated P(COVID); None when the slice could not be decoded
    label: str | None
    assessable: bool
    error: str | None = None  # the catalogue code that refused the slice
    reason: str | None = None  # why it is not assessable: no_lung_field, not_chest_ct, low_resolution (the model's)
    lung_share: float = 0.0  # the prediction's: how much lung the slice shows


@dataclass
class KeyCandidate:
    """What a key slice needs beyond its outcome: its pictures (to make thumbnails) and where it activates."""

    probability: float
    index: int
    slice_400: object = field(compare=False)
    overlay_400: np.ndarray = field(compare=False)
    activation: list = field(compare=False)


def analyse_slices(part: list[tuple[int, bytes]], classifier: Classifier, window: str, limits: Limits):
    """(index, DICOM bytes) of some slices -> per slice (SliceOutcome, its slice.jpg and heatmap.jpg bytes or None,
    a KeyCandidate or None): one forward pass for the part, then each slice's images as POST /analyze makes them."""
    answers = predict_slices([data for _, data in part], classifier, window, limits)
    results = []
    for (index, _), answer in zip(part, answers, strict=True):
        if isinstance(answer, InvalidInput):
            results.append((SliceOutcome(index, None, None, False, answer.code), None, None))
            continue
        gray, prediction = answer
        analysis = describe_slice(gray, prediction)
        probability = float(prediction.probabilities[LABELS[0]])
        counts = prediction.assessable  # a lung field, and like chest CT: only such slices count
        candidate = (
            KeyCandidate(
                probability,
                index,
                analysis.slice_400,
                analysis.overlay_400,
                [f for f in analysis.findings if f.startswith(("The activation", "%")) or "of the lung field" in f],
            )
            if counts
            else None
        )
        results.append(
            (
                SliceOutcome(
                    index,
                    probability,
                    prediction.label,
                    counts,
                    reason=prediction.reason,
                    lung_share=prediction.lung_share,
                ),
                analysis.jpegs,
                candidate,
            )
        )
    return results


def analyse_series(
    read: Callable[[int], bytes],
    total: int,
    classifier: Classifier,
    window: str,
    limits: Limits,
    pool,
    cores: int,
    batch_size: int,
    after_batch: Callable[[int, list], bool] | None = None,
):
    """Every slice (read(index) -> its DICOM bytes) in batches of `batch_size`, each split over `cores` in `pool`
    (batches.core_pool): only a batch's slices are decoded at a time. After each batch, after_batch(slices done,
    the batch's results) may return False to stop (then None is returned). Returns the StudyAnswer."""
    answer = StudyAnswer(total, classifier.threshold)
    for start in range(0, total, batch_size):
        indexes = list(range(start, min(start + batch_size, total)))
        results = on_cores(
            pool, indexes, cores, lambda part: analyse_slices([(i, read(i)) for i in part], classifier, window, limits)
        )
        for outcome, _, candidate in results:
            answer.add(outcome, candidate)
        if after_batch is not None and after_batch(indexes[-1] + 1, results) is False:
            return None
    return answer


class StudyAnswer:
    """The outcomes of every slice, in slice order, and the best key candidates seen (at most MAX_KEY_SLICES)."""

    def __init__(self, total: int, threshold: float):
        self.outcomes: list[SliceOutcome | None] = [None] * total
        self.threshold = threshold
        self._best: list[tuple[float, int, KeyCandidate]] = []  # a min-heap on (probability, -index)

    def add(self, outcome: SliceOutcome, candidate: KeyCandidate | None):
        self.outcomes[outcome.index] = outcome
        if candidate is not None:
            item = (candidate.probability, -candidate.index, candidate)
            if len(self._best) < KEY_POOL:
                heapq.heappush(self._best, item)
            elif item[:2] > self._best[0][:2]:
                heapq.heapreplace(self._best, item)

    @property
    def counted(self) -> list[SliceOutcome]:
        """The slices the answer is made of: assessable, with at least CENTRAL_SHARE of the largest lung share."""
        assessed = [o for o in self.outcomes if o and o.assessable]
        floor = CENTRAL_SHARE * max((o.lung_share for o in assessed), default=0.0)
        return [o for o in assessed if o.lung_share >= floor]

    @property
    def scores(self) -> list[float]:
        return sorted((o.probability for o in self.counted), reverse=True)

    def prediction(self) -> dict:
        scores = self.scores
        if not scores:
            return {
                "label": LABELS[1],
                "score": 0.0,
                "threshold": self.threshold,
                "assessable_slices": 0,
                "aggregation": AGGREGATION,
            }
        score = float(np.mean(scores[: top_k(len(scores))]))
        return {
            "label": LABELS[0] if score >= self.threshold else LABELS[1],
            "score": score,
            "threshold": self.threshold,
            "assessable_slices": sum(bool(o and o.assessable) for o in self.outcomes),
            "aggregation": AGGREGATION,
        }

    def key_candidates(self) -> list[KeyCandidate]:
        """The slices that drive the answer: the top-k counted slices, highest first, at most MAX_KEY_SLICES."""
        counted = {o.index for o in self.counted}
        count = min(MAX_KEY_SLICES, top_k(len(counted))) if counted else 0
        best = sorted(self._best, key=lambda item: item[:2], reverse=True)
        return [c for _, _, c in best if c.index in counted][:count]


def top_k(assessed: int) -> int:
    return min(assessed, max(MIN_TOP, math.ceil(TOP_FRACTION * assessed)))


def key_slices(candidates: list[KeyCandidate], size=(200, 200), quality=50) -> list[dict]:
    return [
        {
            "index": c.index,
            "probability": c.probability,
            "file_thumbnail": create_thumbnail(c.slice_400, size, quality),
            "heatmap_thumbnail": create_thumbnail(c.overlay_400, size, quality),
        }
        for c in candidates
    ]


def describe_study(answer: StudyAnswer, prediction: dict, z: list) -> tuple[list[str], list[str]]:
    """(findings, recommendations) of the study, in plain sentences."""
    outcomes = [o for o in answer.outcomes if o is not None]
    total, assessed = len(outcomes), prediction["assessable_slices"]
    undecoded = sum(o.error is not None for o in outcomes)
    not_assessed = total - assessed - undecoded
    threshold = prediction["threshold"]
    if not assessed:
        findings = [
            f"No slice of this series could be assessed: none of its {total} slices shows a lung field the "
            "model can rate (or they are not chest CT). The study is therefore not called COVID, and the "
            "model says nothing about it. Check that this is an axial chest CT series."
        ]
        return findings, [
            "Nothing was assessed: review the series with a radiologist; do not read the label as a negative result.",
            CAUTION,
        ]
    central = len(answer.counted)
    k = top_k(central)
    findings = [
        f"The study is rated {prediction['label']}: its score, {prediction['score']:.0%}, is the mean COVID "
        f"probability of its {k} highest-scoring counted slice(s) (the top 10%, at least 3); the "
        f"screening threshold is {threshold:.0%}."
    ]
    if central < assessed:
        findings.append(
            f"{assessed - central} assessed slice(s) near the lung apices or bases, showing less than half the lung "
            "area of the fullest slice, do not count toward the answer (partial volume there mimics disease)."
        )
    counted = f"{assessed} of {total} slices were assessed"
    if not_assessed:
        reasons = {REASONS.get(o.reason, o.reason): 0 for o in outcomes if o.error is None and not o.assessable}
        for o in outcomes:
            if o.error is None and not o.assessable:
                reasons[REASONS.get(o.reason, o.reason)] += 1
        why = ", ".join(f"{what}: {count}" for what, count in reasons.items())
        counted += f"; {not_assessed} were not ({why}) and do not count toward the answer"
    if undecoded:
        counted += f"; {undecoded} could not be decoded"
    findings.append(counted + ".")
    above = [o for o in outcomes if o.assessable and o.probability >= threshold]
    if above:
        where = ""
        positions = [z[o.index] for o in above if z[o.index] is not None]
        if positions:
            where = f", between z = {min(positions):.0f} and {max(positions):.0f} mm"
        findings.append(
            f"{len(above)} assessed slice(s) ({len(above) / assessed:.0%}) are at or above the threshold{where}."
        )
    else:
        findings.append("No assessed slice reaches the threshold.")
    top = answer.key_candidates()[:1]
    if top and top[0].activation:
        at = f", z = {z[top[0].index]:.0f} mm" if z[top[0].index] is not None else ""
        findings.append(
            f"On the highest-scoring slice (slice {top[0].index + 1} of {total}{at}, P(COVID) "
            f"{top[0].probability:.0%}): " + " ".join(top[0].activation)
        )
    return findings, _recommendations(prediction) + [CAUTION]


def _recommendations(prediction: dict) -> list[str]:
    if abs(prediction["score"] - prediction["threshold"]) < UNCERTAIN_MARGIN:
        return [
            f"The study score is close to the threshold ({prediction['score']:.0%} against "
            f"{prediction['threshold']:.0%}): the model is uncertain; do not act on this result. Have a "
            "radiologist review the whole series, starting with the key slices."
        ]
    if prediction["label"] == LABELS[0]:
        return [
            "The model associates this study with COVID-19 pneumonia patterns: confirm with RT-PCR and clinical "
            "findings, and have a radiologist review the series, starting with the key slices.",
            "Check the highlighted regions of the key slices for ground-glass opacities or consolidation.",
        ]
    return [
        "The model finds no COVID-19 pattern in this study. That does not rule out infection or other disease "
        "(the model knows only COVID-19 against everything else): correlate with clinical findings."
    ]


def fit_key_slices(doc: dict, candidates: list[KeyCandidate], collection: str, budget: int) -> dict:
    """`doc` with its key slices' thumbnails, shrunk from the kept pixels until the document fits `budget`
    bytes (as an analysis's thumbnails are); without thumbnails if even the smallest do not fit."""
    for size, quality in SHRINK_STEPS:
        doc = {**doc, "key_slices": key_slices(candidates, size, quality)}
        if stored_document_size(collection, doc) <= budget:
            return doc
    return {**doc, "key_slices": [{**k, "file_thumbnail": "", "heatmap_thumbnail": ""} for k in doc["key_slices"]]}


# The per-slice columns a study document keeps (one list each, in slice order: field names counted once).
COLUMNS = (
    "instance_number",
    "sop_instance_uid",
    "z",
    "probability",
    "label",
    "assessable",
    "counted",
    "reason",
    "error",
)
OPTIONAL_COLUMNS = ("counted", "reason", "error")  # in a row only when the slice has one
INTERNAL = ("attempts", "lease_owner", "lease_until", "slice_table")


def slice_rows(doc: dict) -> list[dict]:
    """The stored columns as the API's `slices` rows: {index, instance_number, sop_instance_uid, z, probability,
    label, assessable, counted} (and `reason` for a slice not assessed, `error` for one that could not be decoded)."""
    table = doc.get("slice_table") or {}
    rows = []
    for index in range(doc.get("slice_count", 0)):
        row = {"index": index, **{name: (table.get(name) or [None] * (index + 1))[index] for name in COLUMNS}}
        for name in OPTIONAL_COLUMNS:
            if row[name] is None:
                del row[name]
        rows.append(row)
    return rows


def public(doc: dict) -> dict:
    """The API's view of a stored study: job internals out, `slices` rows in when it is done."""
    view = {name: value for name, value in doc.items() if name not in INTERNAL}
    if doc.get("status") == "done":
        view["slices"] = slice_rows(doc)
    return view
