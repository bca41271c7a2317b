"""The numbers and plots of the model card, from crossval.json's out-of-fold results and the final weights."""
from pathlib import Path

import numpy as np

from backend.ml import calibration, nonct
from backend.ml.classifier import Classifier
from backend.ml.data import load_gray
from backend.ml.inputcheck import K, PROBE_END
from backend.ml.metrics import POSITIVE, plot_roc

REFERENCE_PER_CLASS = 3  # slices whose final predictions are recorded (tests reproduce them)


def out_of_fold(cv, name):
    """(files, logits (N, 2), positive, source groups, folds) of one candidate, in crossval.json's file order."""
    files = list(cv["files"])
    logits = np.array([cv["candidates"][name]["logits"][rel] for rel in files])
    positive = np.array([cv["files"][rel]["label"] == POSITIVE for rel in files])
    groups = [cv["files"][rel]["source"] for rel in files]
    folds = np.array([cv["files"][rel]["fold"] for rel in files])
    return files, logits, positive, groups, folds


def candidate_summary(cv, name):
    """Out-of-fold ROC AUC with its source-bootstrap 95 % interval (over the folds done), per-fold AUCs."""
    candidate = cv["candidates"][name]
    files = [rel for rel in cv["files"] if rel in candidate["logits"]]
    logits = np.array([candidate["logits"][rel] for rel in files])
    positive = np.array([cv["files"][rel]["label"] == POSITIVE for rel in files])
    groups = [cv["files"][rel]["source"] for rel in files]
    return {**calibration.bootstrap_auc(calibration.p_covid(logits), positive, groups),
            "per_fold": [round(f["roc_auc"], 4) for f in candidate["per_fold"]],
            "folds_done": candidate["folds_done"], "images": len(files)}


def plot_reliability(p_before, p_after, positive, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    ax.plot([0.5, 1], [0.5, 1], "--", color="grey", lw=1, label="perfect calibration")
    for p, name in ((p_before, "before"), (p_after, "after temperature scaling")):
        ece, rows = calibration.reliability(p, positive)
        ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], "o-", label=f"{name} (ECE {ece:.3f})")
    ax.set(xlabel="confidence of the predicted class", ylabel="share correct", xlim=(0.5, 1), ylim=(0.3, 1.01),
           title="Reliability, out-of-fold (517 slices)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def final_metrics(weights, folder, items, cv, chosen, operating):
    """metrics.json's evaluation part: out-of-fold metrics of the chosen recipe at the served operating point,
    calibration, the input check's rates, the candidates' comparison and reference predictions of the weights."""
    out_dir = Path(weights).parent
    files, logits, positive, groups, folds = out_of_fold(cv, chosen)
    temperature, threshold = operating["temperature"], operating["threshold"]
    p_before, p_after = calibration.p_covid(logits), calibration.p_covid(logits, temperature)
    ece_before = calibration.reliability(p_before, positive)[0]
    ece_after = calibration.reliability(p_after, positive)[0]
    plot_reliability(p_before, p_after, positive, out_dir / "reliability.png")
    labels = [cv["files"][rel]["label"] for rel in files]
    plot_roc(labels, p_after, out_dir / "roc.png", "out-of-fold ROC (517 slices, 5 grouped folds)")

    classifier = Classifier.load(weights)
    check = classifier.input_check
    flagged_oof = float((check.held_out > check.limit).mean())
    non_ct = {}
    for name, data in nonct.images().items():
        in_distribution, score = nonct.screen(classifier, data)
        non_ct[name] = {"in_distribution": in_distribution, "distribution_score": round(score, 4)}
    reference = {}
    for label in ("COVID", "NonCOVID"):
        chosen_items = [rel for rel, lab in items if lab == label]
        for rel in chosen_items[::len(chosen_items) // REFERENCE_PER_CLASS][:REFERENCE_PER_CLASS]:
            prediction = classifier.predict(load_gray(folder, rel))
            reference[rel] = {"p_covid": prediction.probabilities[POSITIVE], "label": prediction.label,
                              "in_distribution": prediction.in_distribution,
                              "distribution_score": prediction.distribution_score}
    return {
        "out_of_fold": {
            "recipe": chosen, "folds": cv["folds"], "images": len(files),
            **calibration.bootstrap_auc(p_after, positive, groups),
            "operating_point": calibration.at_threshold(p_after, positive, threshold),
            "at_0.5": calibration.at_threshold(p_after, positive, 0.5),
            "temperature": temperature,
            "ece_before": ece_before, "ece_after": ece_after,
            "ece_after_cross_fitted": calibration.cross_fitted_ece(logits, positive, folds),
        },
        "candidates": {name: candidate_summary(cv, name) for name in cv["candidates"]
                       if cv["candidates"][name]["folds_done"]},
        "input_check": {
            "k": K, "features": f"ImageNet EfficientNet-Lite0 features[:{PROBE_END}], pooled", "limit": check.limit,
            "flagged_out_of_fold_ct": flagged_oof,
            "flagged_non_ct": float(np.mean([not v["in_distribution"] for v in non_ct.values()])),
            "non_ct": non_ct,
        },
        "reference_predictions": reference,
    }
