"""Operating point and calibration from out-of-fold logits: threshold, temperature, ECE, bootstrap intervals."""

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

TARGET_SENSITIVITY = 0.85
ECE_BINS = 10
RESAMPLES = 2000  # bootstrap resamples of the AUC intervals (the training tests lower it: it was most of their time)


def p_covid(logits, temperature=1.0):
    """P(COVID) = softmax(logits / T)[0] of (N, 2) logits."""
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float64) / temperature, dim=1)[:, 0].numpy()


def fit_temperature(logits, positive):
    """The T > 0 minimising the negative log-likelihood of softmax(logits / T) (Guo et al., 2017)."""
    logits = torch.as_tensor(logits, dtype=torch.float64)
    target = torch.as_tensor(np.where(positive, 0, 1))
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), target)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def threshold_for_sensitivity(p, positive, target=TARGET_SENSITIVITY):
    """The highest threshold t with sensitivity (share of positives with p >= t) at least `target`."""
    scores = np.sort(np.asarray(p)[np.asarray(positive, bool)])[::-1]
    return float(scores[int(np.ceil(target * len(scores))) - 1])


def at_threshold(p, positive, threshold):
    positive = np.asarray(positive, bool)
    predicted = np.asarray(p) >= threshold
    tp, fn = int((predicted & positive).sum()), int((~predicted & positive).sum())
    fp, tn = int((predicted & ~positive).sum()), int((~predicted & ~positive).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    sensitivity = tp / (tp + fn)
    return {
        "threshold": float(threshold),
        "sensitivity": sensitivity,
        "specificity": tn / (tn + fp),
        "precision": precision,
        "accuracy": (tp + tn) / len(positive),
        "f1": 2 * precision * sensitivity / (precision + sensitivity) if precision + sensitivity else 0.0,
        "confusion_matrix": {"rows_true_cols_predicted": ["COVID", "NonCOVID"], "matrix": [[tp, fn], [fp, tn]]},
    }


def reliability(p, positive, bins=ECE_BINS):
    """(expected calibration error, per-bin rows) of the predicted class's probability (equal-width bins)."""
    p, positive = np.asarray(p, float), np.asarray(positive, bool)
    confidence = np.maximum(p, 1 - p)
    correct = (p >= 0.5) == positive
    edges = np.linspace(0.5, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        inside = index == b
        if inside.any():
            gap = abs(confidence[inside].mean() - correct[inside].mean())
            ece += inside.mean() * gap
            rows.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "n": int(inside.sum()),
                    "confidence": float(confidence[inside].mean()),
                    "accuracy": float(correct[inside].mean()),
                }
            )
    return float(ece), rows


def bootstrap_auc(p, positive, groups, resamples=None, seed=0):
    """ROC AUC and its 95 % percentile interval, resampling whole sources (slices of one source are not independent);
    RESAMPLES resamples unless told."""
    resamples = resamples or RESAMPLES
    p, positive, groups = np.asarray(p), np.asarray(positive, bool), np.asarray(groups)
    names = np.unique(groups)
    members = {g: np.flatnonzero(groups == g) for g in names}
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        index = np.concatenate([members[g] for g in rng.choice(names, len(names))])
        if 0 < positive[index].sum() < len(index):
            values.append(roc_auc_score(positive[index], p[index]))
    low, high = np.percentile(values, [2.5, 97.5])
    return {
        "roc_auc": float(roc_auc_score(positive, p)),
        "ci95": [float(low), float(high)],
        "resamples": len(values),
        "unit": "source",
    }


def operating_point(logits, positive, sources=None):
    """{temperature, threshold} fitted on out-of-fold logits: the threshold applies to the calibrated P(COVID) and
    keeps the target sensitivity within every source (the lowest of the sources' thresholds)."""
    temperature = fit_temperature(logits, positive)
    p, positive = p_covid(logits, temperature), np.asarray(positive, bool)
    sources = np.asarray(sources if sources is not None else np.zeros(len(p)))
    return {
        "temperature": temperature,
        "threshold": min(
            threshold_for_sensitivity(p[sources == s], positive[sources == s]) for s in np.unique(sources)
        ),
    }


def cross_fitted_ece(logits, positive, folds, bins=ECE_BINS):
    """ECE after temperature scaling where each fold's temperature is fitted on the other folds only
    (an honest 'after': the plain 'after' is measured on the logits the temperature was fitted to). None for the
    logits of a single held-out fold: there is no other fold to fit on."""
    logits, positive, folds = np.asarray(logits), np.asarray(positive, bool), np.asarray(folds)
    if len(np.unique(folds)) < 2:
        return None
    p = np.zeros(len(positive))
    for k in np.unique(folds):
        rest = folds != k
        p[~rest] = p_covid(logits[~rest], fit_temperature(logits[rest], positive[rest]))
    return reliability(p, positive, bins)[0]
