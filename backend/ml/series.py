"""The served model over one DICOM series in slice order: `python -m backend.ml.series <folder> [--json FILE]`.

A sanity check on real hospital CT (Hounsfield units through the service's lung window, as an upload gets):
per slice its position, whether it was assessed (and why not), P(COVID) and the label. Never used to choose
or tune anything: the series in ../shared/data/ct-series is one patient, not COVID.
"""

import argparse
import json
from pathlib import Path

import pydicom
import torch

from backend.analysis.study import AGGREGATION, SliceOutcome, StudyAnswer
from backend.config import DEFAULT_MODEL_PATH
from backend.imaging.decode import decode_image
from backend.ml.classifier import Classifier
from backend.ml.metrics import POSITIVE


def ordered(folder) -> list[tuple[float, Path]]:
    """[(z, path)] of the folder's DICOM files by ImagePositionPatient z, head first (never by file name)."""
    slices = [
        (float(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient[2]), path)
        for path in Path(folder).glob("*.dcm")
    ]
    return sorted(slices, key=lambda entry: -entry[0])


def run(classifier, folder, window="lung") -> list[dict]:
    rows = []
    for z, path in ordered(folder):
        prediction = classifier.predict(decode_image(path.read_bytes(), window=window))
        rows.append(
            {
                "file": path.name,
                "z": z,
                "assessable": prediction.assessable,
                "reason": prediction.reason,
                "p_covid": round(prediction.probabilities[POSITIVE], 6),
                "label": prediction.label,
                "distribution_score": round(prediction.distribution_score, 4),
                "lung_share": round(float(prediction.lung_share), 4),
            }
        )
    return rows


def summary(rows, threshold) -> dict:
    """Counts, and the study's answer by the service's own rule (backend.analysis.study.StudyAnswer: the mean
    P(COVID) of the top 10 % of the counted slices, those assessable with at least half the lung share of the
    series' fullest, at least 3; NonCOVID with score 0 when none counts). Marks each row `counted`."""
    answer = StudyAnswer(len(rows), threshold)
    for index, row in enumerate(rows):
        outcome = SliceOutcome(
            index, row["p_covid"], row["label"], row["assessable"], reason=row["reason"], lung_share=row["lung_share"]
        )
        answer.add(outcome, None)
    counted = {outcome.index for outcome in answer.counted}
    for index, row in enumerate(rows):
        row["counted"] = index in counted
    prediction = answer.prediction()
    assessed = [row for row in rows if row["assessable"]]
    return {
        "slices": len(rows),
        "assessable": len(assessed),
        "assessable_called_covid": sum(row["label"] == POSITIVE for row in assessed),
        "counted": len(counted),
        "not_assessable": {row["file"]: row["reason"] for row in rows if not row["assessable"]},
        "study": {
            "score": round(prediction["score"], 4),
            "label": prediction["label"],
            "threshold": threshold,
            "aggregation": AGGREGATION,
        },
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="one series: DICOM files (.dcm)")
    parser.add_argument("--weights", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--window", default="lung")
    parser.add_argument("--json", type=Path, help="also write the rows and the summary here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    classifier = Classifier.load(args.weights)
    rows = run(classifier, args.folder, args.window)
    totals = summary(rows, classifier.threshold)  # marks the counted rows
    print(f"{classifier.name} {classifier.version}, threshold {classifier.threshold:.3f}, {args.folder}")
    for row in rows:
        verdict = row["label"] if row["assessable"] else f"not assessed ({row['reason']})"
        print(
            f"  {row['file']:<10} z {row['z']:7.1f}  P(COVID) {row['p_covid']:.3f}  {verdict}"
            + ("  counted" if row["counted"] else "")
        )
    result = {"model": {"name": classifier.name, "version": classifier.version}, "rows": rows, **totals}
    print({k: v for k, v in result.items() if k not in ("rows", "model")})
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
