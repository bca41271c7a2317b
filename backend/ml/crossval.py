"""Choose and measure the recipe on held-out slices: `python -m backend.ml.crossval <folder>... [--split sources]`.

--split groups (crossval.json): stratified group K-fold over every slice of every folder (groups:
`data.source_groups`, so no paper or patient is on both sides, as far as the names tell). --split
sources (crosssource.json): one fold per folder, trained on the other folders and tested on it, which
no grouping can leak. Each candidate recipe (train.RECIPES) is trained with train.py's own `fit` on
each fold's training part and predicts the held-out fold: the logits of every slice come from a
network that never saw it (an ensemble recipe trains its members, one seed each, and averages their
logits). Within a file, the winner is the recipe with the highest score (groups: pooled out-of-fold ROC
AUC; sources: the mean over held-out folders of each folder's ROC AUC), an ensemble only by
ENSEMBLE_MARGIN (exact tie: the earlier in train.RECIPES). `python -m backend.ml.train` then fits the
threshold and the temperature on crossval.json's out-of-fold results, and the input check's limit on
the same folds.
"""

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from backend.ml import data, train
from backend.ml.metrics import POSITIVE

ENSEMBLE_MARGIN = 0.010  # SELECTION.md round 5: an ensemble must beat a single network by this much
SPLITS = {"groups": "crossval.json", "sources": "crosssource.json"}  # --split: its default output file
SCORES = {"groups": "pooled out-of-fold ROC AUC", "sources": "mean of the held-out folders' ROC AUCs"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folders",
        type=Path,
        nargs="+",
        metavar="folder",
        help="folders with COVID/ and NonCOVID/ subfolders, one per source",
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="groups",
        help="groups: grouped K-fold over all slices; sources: train on the other folders, test on each",
    )
    parser.add_argument("--out", type=Path, help="default: crossval.json (groups) or crosssource.json (sources)")
    parser.add_argument("--candidates", nargs="+", default=list(train.RECIPES), choices=list(train.RECIPES))
    parser.add_argument("--folds", type=int, default=5, help="with --split groups")
    parser.add_argument(
        "--max-folds",
        type=int,
        help="run only the first N folds (a grouped held-out split: --folds 5 --max-folds 1 holds out "
        "20 %% of each source's groups); the others stay unscored",
    )
    parser.add_argument("--epochs", type=int, help="override every candidate's epochs (smoke tests)")
    parser.add_argument(
        "--views",
        type=int,
        help="override every candidate's cached views per slice (smoke tests: "
        "the frozen layers' output of every view is most of their time)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=train.RUNS_DIR / "cache")
    args = parser.parse_args(argv)
    args.out = args.out or train.WEIGHTS_DIR / SPLITS[args.split]
    started = time.time()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    items = data.list_images(args.folders)
    y = train.labels_tensor(items)
    positive = np.array([label == POSITIVE for _, label in items])
    groups = data.source_groups(items)
    folds = data.grouped_folds(items, args.folds, args.seed) if args.split == "groups" else data.source_folds(items)
    if args.split == "sources" and len(folds) < 2:
        parser.error("--split sources needs at least two folders")
    fold_of = np.zeros(len(items), int)
    for k, (_, held_out) in enumerate(folds):
        fold_of[held_out] = k
    run = min(len(folds), args.max_folds or len(folds))  # folds trained and scored
    scored = np.isin(fold_of, range(run))

    override = {**({"epochs": args.epochs} if args.epochs else {}), **({"views": args.views} if args.views else {})}
    recipes = {name: train.recipe_namespace({**train.RECIPES[name], **override}) for name in args.candidates}
    record = {
        "commands": ["python -m backend.ml.crossval " + shlex.join(sys.argv[1:] if argv is None else argv)],
        "folders": [str(f) for f in args.folders],
        "split": args.split,
        "folds": len(folds),
        **({"folds_run": run} if run < len(folds) else {}),
        "seed": args.seed,
        "device": str(device),
        "torch": torch.__version__,
        "rule": f"the highest {SCORES[args.split]} among candidates with all folds done wins, an "
        f"ensemble's less {ENSEMBLE_MARGIN} (it costs its members' time); exact tie: the earlier in "
        "train.RECIPES",
        "files": {
            rel: {"label": label, "source": g, "fold": int(f)}
            for (rel, label), g, f in zip(items, groups, fold_of, strict=True)
        },
        "candidates": {},
    }
    mine = {}  # this call's candidates; others in args.out (earlier rounds, a parallel call) are kept

    def write():
        """Re-read args.out and replace only this call's candidates, so calls on the same folds add up."""
        out = dict(record, candidates={})
        if args.out.is_file():
            earlier = json.loads(args.out.read_text())
            if (earlier["files"], earlier["folds"], earlier["seed"]) == (record["files"], len(folds), args.seed):
                out["candidates"] = {n: c for n, c in earlier["candidates"].items() if n not in mine}
                commands = earlier.get("commands", [earlier.get("command")])
                out["commands"] = commands + [c for c in record["commands"] if c not in commands]
        out["candidates"].update(mine)
        if (best := winner(out["candidates"])) is not None:
            out["winner"] = best
        out["wall_time_s"] = round(time.time() - started, 1)
        args.out.write_text(json.dumps(out, indent=1) + "\n")
        return out

    write()  # the files and folds at once: a final training started alongside checks them and waits for the logits
    for name, recipe in recipes.items():  # candidate-major: the first candidate's results are complete first
        _, inputs = train.recipe_inputs(recipe, args.folders, items, args.cache)
        logits = torch.zeros(len(items), 2, dtype=torch.float64)
        fold_records = []
        members = train.option(recipe, "members")
        for k, (tr, te) in enumerate(folds[:run]):
            fold_started = time.time()
            member_logits, history = [], []
            for member in range(members):  # an ensemble's logits: the mean of its members'
                rng = train.seed_everything(args.seed + member)
                desc = f"{name} fold {k}" + (f" member {member}" if members > 1 else "")
                network, _, member_history = train.fit(recipe, inputs[tr], y[tr], rng, device, desc=desc)
                member_logits.append(train.plain_view_logits(network, recipe, inputs[te], device))
                history.append(member_history)
            held_logits = torch.stack(member_logits).mean(0)
            logits[te] = held_logits
            p = torch.softmax(held_logits, 1)[:, 0].numpy()
            fold_records.append(
                {
                    "fold": k,
                    "train": len(tr),
                    "held_out": len(te),
                    **({"source": data.source_of(items[te[0]][0])} if args.split == "sources" else {}),
                    "held_out_covid": int(positive[te].sum()),
                    "roc_auc": float(roc_auc_score(positive[te], p)),
                    "wall_time_s": round(time.time() - fold_started, 1),
                    "history": history[0] if members == 1 else history,
                }
            )
            if members > 1:
                fold_records[-1]["member_roc_auc"] = [
                    float(roc_auc_score(positive[te], torch.softmax(m, 1)[:, 0].numpy())) for m in member_logits
                ]
            print(
                f"{name} fold {k}: AUC {fold_records[-1]['roc_auc']:.3f} ({fold_records[-1]['wall_time_s']} s)",
                flush=True,
            )
            mine[name] = {
                "recipe": vars(recipe),
                "folds_done": k + 1,
                "per_fold": fold_records,
                "logits": {
                    rel: [round(v, 6) for v in row]
                    for (rel, _), row, done in zip(items, logits.tolist(), np.isin(fold_of, range(k + 1)), strict=False)
                    if done
                },
            }
            write()
        p = torch.softmax(logits, 1)[:, 0].numpy()
        mine[name]["out_of_fold_roc_auc"] = float(roc_auc_score(positive[scored], p[scored]))
        mine[name]["score"] = score(args.split, mine[name])
        print(
            f"{name}: out-of-fold ROC AUC {mine[name]['out_of_fold_roc_auc']:.3f}, "
            f"{SCORES[args.split]} {mine[name]['score']:.3f}",
            flush=True,
        )

    out = write()
    print("winner:", out.get("winner"), {n: c.get("score") for n, c in out["candidates"].items()})
    return out


def score(split, candidate) -> float:
    """What the rule compares: the pooled out-of-fold ROC AUC (groups), or the mean of the held-out folders' own
    ROC AUCs (sources: the pooled AUC would also reward telling the folders apart)."""
    if split == "groups":
        return candidate["out_of_fold_roc_auc"]
    return float(np.mean([fold["roc_auc"] for fold in candidate["per_fold"]]))


def winner(candidates: dict) -> str | None:
    """The rule: the highest score among candidates with all folds done, an ensemble's less ENSEMBLE_MARGIN;
    exact tie: the earlier in train.RECIPES. None before any candidate is complete. (Before round 9 the score
    was the pooled out-of-fold ROC AUC, which `score` gives for the groups split.)"""

    def margin(recipe):
        return ENSEMBLE_MARGIN if train.option(train.recipe_namespace(recipe), "members") > 1 else 0

    scores = {
        n: c.get("score", c.get("out_of_fold_roc_auc")) - margin(c["recipe"])
        for n, c in candidates.items()
        if "out_of_fold_roc_auc" in c
    }
    return max(scores, key=lambda n: (scores[n], -list(train.RECIPES).index(n))) if scores else None


if __name__ == "__main__":
    main()
