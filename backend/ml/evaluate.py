"""Evaluate weights on a folder of labelled slices: `python -m backend.ml.evaluate <folder>`.

Prints accuracy, sensitivity, specificity, F1 (at the weights' own threshold) and ROC AUC (COVID
positive), and writes a ROC PNG. Meant for slices the model was not trained on: the committed
weights were trained on all of ../shared/data/covid-ct (their honest estimate is the out-of-fold
one in metrics.json).
"""

import argparse
import json
from pathlib import Path

import torch

from backend.config import DEFAULT_MODEL_PATH
from backend.ml import data
from backend.ml.classifier import Classifier
from backend.ml.metrics import POSITIVE, binary_metrics, plot_roc, score


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder with COVID/ and NonCOVID/ subfolders")
    parser.add_argument("--weights", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--roc", type=Path, default=Path("roc.png"), help="where the ROC curve PNG goes")
    parser.add_argument("--json", type=Path, help="also write the metrics here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    items = data.list_images([args.folder])
    classifier = Classifier.load(args.weights)
    predictions = score(classifier, [args.folder], items)
    labels = [label for _, label in items]
    metrics = binary_metrics(labels, list(predictions.values()), classifier.threshold)
    what = str(args.folder)
    positive = [label == POSITIVE for label in labels]
    plot_roc({"": (positive, list(predictions.values()))}, args.roc, f"{classifier.name} {classifier.version}: {what}")
    print(
        f"{classifier.name} {classifier.version} on {what} ({metrics['n']} images, COVID positive, "
        f"threshold P(COVID) >= {classifier.threshold:.3f})"
    )
    for key in ("roc_auc", "accuracy", "sensitivity", "specificity", "f1"):
        print(f"  {key:<12} {metrics[key]:.4f}")
    (tp, fn), (fp, tn) = metrics["confusion_matrix"]["matrix"]
    print(f"  confusion    true COVID: {tp} predicted COVID, {fn} NonCOVID; true NonCOVID: {fp} COVID, {tn} NonCOVID")
    print(f"  ROC curve -> {args.roc}")
    if args.json:
        args.json.write_text(json.dumps({**metrics, "p_covid": predictions}, indent=1) + "\n")
    return metrics


if __name__ == "__main__":
    main()
