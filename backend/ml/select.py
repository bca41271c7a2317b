"""Choose a training recipe by grouped cross-validation inside the training split only.

`python -m backend.ml.select <folder> [--epochs 15] [--candidates A B] [--out selection.json]`

The validation part of the recorded split is never read. The training part is cut into
stratified group folds by the same source groups as `data.split_by_source`; each candidate
recipe (train.py options) is trained with train.py's own `fit` on each fold's training part for
a fixed number of epochs (no early stopping) and scored by the ROC AUC of the last epoch's
network on the held-out fold. Writes mean and sd per candidate to selection.json.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from backend.ml import data, train
from backend.ml.augment import shrink
from backend.ml.metrics import POSITIVE
from backend.ml.preprocess import LABELS, to_input

# train.py options of each candidate, on top of its defaults (= ctnet-covid 1.0.0's recipe).
# Round 1 compared A and B, round 2 A, C and D (SELECTION.md).
CANDIDATES = {
    "A": [],
    "B": ["--lr", "1e-3", "--weight-decay", "1e-4", "--label-smoothing", "0.05", "--dropout", "0.1",
          "--blur-p", "0.15", "--jpeg-p", "0.15", "--border-p", "0.5"],
    "C": ["--ema", "0.98"],
    "D": ["--ema", "0.98", "--weight-decay", "0.01", "--label-smoothing", "0", "--dropout", "0.1"],
}


def summary(results):
    out = {}
    for name, folds in results.items():
        aucs = [f["auc"] for f in folds]
        out[name] = {"mean_auc": float(np.mean(aucs)), "sd_auc": float(np.std(aucs)), "folds_done": len(aucs)}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--split", type=Path, default=train.WEIGHTS_DIR / "split.json")
    parser.add_argument("--out", type=Path, default=train.WEIGHTS_DIR / "selection.json")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES))
    args = parser.parse_args(argv)
    started = time.time()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    items = data.read_split(args.split, "train")  # the validation part is never read
    gray = [data.load_gray(args.folder, rel) for rel, _ in items]
    cached = [shrink(g) for g in gray]
    inputs = torch.stack([to_input(g) for g in gray])
    y = torch.tensor([LABELS.index(label) for _, label in items])
    positive = np.array([label == POSITIVE for _, label in items])
    folds = data.grouped_folds(items, args.folds, args.seed)

    fixed = ["--epochs", str(args.epochs), "--patience", str(args.epochs), "--seed", str(args.seed)]
    recipes = {name: train.parse_args([str(args.folder), *CANDIDATES[name], *fixed]) for name in args.candidates}
    results = {name: [] for name in recipes}
    record = {"split": str(args.split), "part": "train", "items": len(items), "folds": args.folds,
              "seed": args.seed, "epochs": args.epochs, "score": "ROC AUC of the last epoch on the held-out inner fold",
              "rule": "highest mean inner-fold AUC wins; exact tie: A",
              "candidates": {name: {k: getattr(r, k) for k in train.RECIPE_KEYS} for name, r in recipes.items()},
              "fold_sizes": [{"train": len(tr), "held_out": len(te),
                              "held_out_covid": int(positive[te].sum())} for tr, te in folds]}
    for k, (tr, te) in enumerate(folds):  # fold-major, so partial results compare like with like
        for name, recipe in recipes.items():
            fold_started = time.time()
            rng = train.seed_everything(args.seed)
            _, _, _, history = train.fit(recipe, [cached[i] for i in tr], y[tr], inputs[te].to(device),
                                         positive[te], rng, device, desc=f"{name} fold {k}")
            results[name].append({"fold": k, "auc": history[-1]["val_roc_auc"],
                                  "best_epoch_auc": max(h["val_roc_auc"] for h in history),
                                  "final_train_loss": history[-1]["train_loss"],
                                  "wall_time_s": round(time.time() - fold_started, 1), "history": history})
            record.update(results=results, summary=summary(results), wall_time_s=round(time.time() - started, 1))
            args.out.write_text(json.dumps(record, indent=1) + "\n")
            print(name, "fold", k, "AUC", round(history[-1]["val_roc_auc"], 3), flush=True)

    final = summary(results)
    winner = max(final, key=lambda n: (final[n]["mean_auc"], n == "A"))
    record.update(winner=winner)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    for name, s in final.items():
        print(f"{name}: inner-CV ROC AUC {s['mean_auc']:.3f} ± {s['sd_auc']:.3f} ({s['folds_done']} folds)")
    print("winner:", winner)
    return record


if __name__ == "__main__":
    main()
