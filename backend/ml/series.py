"""The served model over one DICOM series in slice order: `python -m backend.ml.series <folder> [--json FILE]`.

A sanity check on real hospital CT (Hounsfield units through the service's lung window, as an upload gets):
per slice its position, whether it was assessed (and why not), P(COVID) and the label. Never used to choose
or tune anything: the series in ../shared/data/ct-series is one patient, not COVID.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import pydicom
import torch

from backend.analysis.study import AGGREGATION, top_k
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
            }
        )
    return rows


def summary(rows, threshold) -> dict:
    """Counts, and the study's answer by the service's own rule (backend.analysis.study: the mean P(COVID) of the
    top 10 % of assessable slices, at least 3; NonCOVID with score 0 when none is assessable)."""
    assessed = [row for row in rows if row["assessable"]]
    scores = sorted((row["p_covid"] for row in assessed), reverse=True)
    score = float(np.mean(scores[: top_k(len(scores))])) if scores else 0.0
    return {
        "slices": len(rows),
        "assessable": len(assessed),
        "assessable_called_covid": sum(row["label"] == POSITIVE for row in assessed),
        "not_assessable": {row["file"]: row["reason"] for row in rows if not row["assessable"]},
        "study": {
            "score": round(score, 4),
            "label": POSITIVE if scores and score >= threshold else "NonCOVID",
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
    print(f"{classifier.name} {classifier.version}, threshold {classifier.threshold:.3f}, {args.folder}")
    for row in rows:
        verdict = row["label"] if row["assessable"] else f"not assessed ({row['reason']})"
        print(f"  {row['file']:<10} z {row['z']:7.1f}  P(COVID) {row['p_covid']:.3f}  {verdict}")
    result = {
        "model": {"name": classifier.name, "version": classifier.version},
        "rows": rows,
        **summary(rows, classifier.threshold),
    }
    print({k: v for k, v in result.items() if k not in ("rows", "model")})
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
