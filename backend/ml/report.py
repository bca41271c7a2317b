"""The numbers and plots of the model card: crossval.json's out-of-fold results (pooled and per source),
crosssource.json's cross-source results and the final weights."""

import json
from pathlib import Path

import numpy as np

from backend.ml import calibration, nonct
from backend.ml.classifier import Classifier
from backend.ml.data import load_gray, source_of
from backend.ml.inputcheck import PROBE_END, K
from backend.ml.metrics import POSITIVE, plot_roc

REFERENCE_PER_CLASS = 3  # slices per class and source whose final predictions are recorded (tests reproduce them)


def out_of_fold(cv, name):
    """(files, logits (N, 2), positive, source groups, folds) of one candidate, in crossval.json's file order: every
    file held out by a fold that ran (all of them, unless the cross-validation ran only its first folds)."""
    files = [key for key in cv["files"] if key in cv["candidates"][name]["logits"]]
    logits = np.array([cv["candidates"][name]["logits"][key] for key in files])
    positive = np.array([cv["files"][key]["label"] == POSITIVE for key in files])
    groups = [cv["files"][key]["source"] for key in files]
    folds = np.array([cv["files"][key]["fold"] for key in files])
    return files, logits, positive, groups, folds


def candidate_summary(cv, name):
    """Held-out ROC AUC with its group-bootstrap 95 % interval (over the folds done), pooled and per source (for a
    cross-source file: each source scored by networks trained on the others), per-fold AUCs."""
    candidate = cv["candidates"][name]
    files = [key for key in cv["files"] if key in candidate["logits"]]
    p = calibration.p_covid(np.array([candidate["logits"][key] for key in files]))
    positive = np.array([cv["files"][key]["label"] == POSITIVE for key in files])
    groups = np.array([cv["files"][key]["source"] for key in files])
    sources = np.array([source_of(key) for key in files])
    per_source = {
        s: calibration.bootstrap_auc(p[sources == s], positive[sources == s], groups[sources == s])
        for s in dict.fromkeys(sources)
    }
    return {
        **calibration.bootstrap_auc(p, positive, groups),
        "per_source": per_source,
        "per_fold": [round(f["roc_auc"], 4) for f in candidate["per_fold"]],
        "folds_done": candidate["folds_done"],
        "images": len(files),
    }


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def plot_reliability(p_before, p_after, positive, path, title):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    ax.plot([0.5, 1], [0.5, 1], "--", color="grey", lw=1, label="perfect calibration")
    for p, name in ((p_before, "before"), (p_after, "after temperature scaling")):
        ece, rows = calibration.reliability(p, positive)
        ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], "o-", label=f"{name} (ECE {ece:.3f})")
    ax.set(
        xlabel="confidence of the predicted class", ylabel="share correct", xlim=(0.5, 1), ylim=(0.3, 1.01), title=title
    )
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _calibration(logits, positive, folds, groups, temperature, threshold):
    """AUC with its interval, the operating point, P >= 0.5 and ECE before and after of one set of held-out logits."""
    p_before, p_after = calibration.p_covid(logits), calibration.p_covid(logits, temperature)
    return {
        **calibration.bootstrap_auc(p_after, positive, groups),
        "operating_point": calibration.at_threshold(p_after, positive, threshold),
        "at_0.5": calibration.at_threshold(p_after, positive, 0.5),
        "ece_before": calibration.reliability(p_before, positive)[0],
        "ece_after": calibration.reliability(p_after, positive)[0],
        "ece_after_cross_fitted": calibration.cross_fitted_ece(logits, positive, folds),
    }


def final_metrics(weights, folders, items, cv, chosen, operating, crosssource=None):
    """metrics.json's evaluation part: out-of-fold metrics of the chosen recipe at the served operating point, pooled
    and per source, calibration and its plots, the cross-source results, the input check's rates, the candidates'
    comparison and reference predictions of the weights."""
    out_dir = Path(weights).parent
    files, logits, positive, groups, folds = out_of_fold(cv, chosen)
    groups, sources = np.array(groups), np.array([source_of(key) for key in files])
    temperature, threshold = operating["temperature"], operating["threshold"]
    per_source = {}
    for s in dict.fromkeys(sources):
        inside = sources == s
        per_source[s] = _calibration(
            logits[inside], positive[inside], folds[inside], groups[inside], temperature, threshold
        )
        plot_reliability(
            calibration.p_covid(logits[inside]),
            calibration.p_covid(logits[inside], temperature),
            positive[inside],
            out_dir / f"reliability-{s}.png",
            f"Reliability, out-of-fold: {s}",
        )
    p_after = calibration.p_covid(logits, temperature)
    plot_roc(
        {**{s: (positive[sources == s], p_after[sources == s]) for s in per_source}, "pooled": (positive, p_after)},
        out_dir / "roc.png",
        f"held-out ROC (grouped fold 0 of {cv['folds']})"
        if cv.get("folds_run") == 1
        else f"out-of-fold ROC ({cv['folds']} grouped folds)",
    )

    classifier = Classifier.load(weights)
    check = classifier.input_check
    non_ct = {}
    for name, content in nonct.images().items():
        in_distribution, score = nonct.screen(classifier, content)
        non_ct[name] = {"in_distribution": in_distribution, "distribution_score": round(score, 4)}
    reference = {}
    for s in per_source:
        for label in ("COVID", "NonCOVID"):
            chosen_items = [key for key, lab in items if lab == label and source_of(key) == s]
            for key in chosen_items[:: len(chosen_items) // REFERENCE_PER_CLASS][:REFERENCE_PER_CLASS]:
                prediction = classifier.predict(load_gray(folders, key))
                reference[key] = {
                    "p_covid": prediction.probabilities[POSITIVE],
                    "label": prediction.label,
                    "in_distribution": prediction.in_distribution,
                    "distribution_score": prediction.distribution_score,
                    "assessable": prediction.assessable,
                }
    cross = json.loads(Path(crosssource).read_text()) if crosssource and Path(crosssource).is_file() else None
    return {
        "out_of_fold": {
            "recipe": chosen,
            "folds": cv["folds"],
            "images": len(files),
            "temperature": temperature,
            **_calibration(logits, positive, folds, groups, temperature, threshold),
            "per_source": per_source,
        },
        "candidates": {
            name: candidate_summary(cv, name) for name in cv["candidates"] if cv["candidates"][name]["folds_done"]
        },
        "cross_source": {
            name: candidate_summary(cross, name)
            for name in cross["candidates"]
            if cross["candidates"][name]["folds_done"] == cross["folds"]
        }
        if cross
        else {},
        "input_check": {
            "k": K,
            "features": f"ImageNet EfficientNet-Lite0 features[:{PROBE_END}], pooled",
            "limit": check.limit,
            "flagged_out_of_fold_ct": float((check.held_out > check.limit).mean()),
            "flagged_non_ct": float(np.mean([not v["in_distribution"] for v in non_ct.values()])),
            "non_ct": non_ct,
        },
        "reference_predictions": reference,
    }
