"""Scoring labelled slices with the served classifier, and the binary metrics (COVID is positive)."""

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from backend.ml.data import load_gray
from backend.ml.preprocess import LABELS

POSITIVE = LABELS[0]  # "COVID"


def score(classifier, folders, items):
    """{item key: P(COVID)} through `Classifier.predict`, exactly the serving path."""
    return {key: classifier.predict(load_gray(folders, key)).probabilities[POSITIVE] for key, _ in items}


def binary_metrics(labels, p_positive, threshold=0.5):
    """Accuracy, sensitivity, specificity, F1 and ROC AUC at a threshold on P(COVID) (serving: its own threshold)."""
    y = np.array([label == POSITIVE for label in labels], dtype=int)
    p = np.asarray(p_positive, dtype=float)
    pred = (p >= threshold).astype(int)
    (tn, fp), (fn, tp) = confusion_matrix(y, pred, labels=[0, 1])
    sensitivity = tp / (tp + fn) if tp + fn else float("nan")
    specificity = tn / (tn + fp) if tn + fp else float("nan")
    precision = tp / (tp + fp) if tp + fp else 0.0
    f1 = 2 * precision * sensitivity / (precision + sensitivity) if precision + sensitivity else 0.0
    return {
        "n": int(len(y)),
        "threshold": float(threshold),
        "roc_auc": float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan"),
        "accuracy": float((pred == y).mean()),
        "sensitivity": float(sensitivity),
        "specificity": float(specificity),
        "f1": float(f1),
        "confusion_matrix": {
            "rows_true_cols_predicted": [POSITIVE, LABELS[1]],
            "matrix": [[int(tp), int(fn)], [int(fp), int(tn)]],
        },
    }


def plot_roc(curves, path, title):
    """Write ROC curves as one PNG (Agg backend: no display needed): curves is {name: (positive, p_positive)}."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    for name, (positive, p) in curves.items():
        fpr, tpr, _ = roc_curve(positive, p)
        ax.plot(fpr, tpr, lw=2, label=f"{name}: AUC {roc_auc_score(positive, p):.3f}".lstrip(": "))
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
