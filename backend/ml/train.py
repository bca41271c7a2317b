"""Train CTNet on a folder of labelled slices: `python -m backend.ml.train <folder>`.

Split by source, seeded and deterministic, early stopping on validation ROC AUC; writes the
weights, the recorded split and a metrics JSON next to each other.
"""
import argparse
import copy
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from backend.ml import data
from backend.ml.augment import augment, shrink
from backend.ml.classifier import Classifier
from backend.ml.metrics import POSITIVE, binary_metrics, score
from backend.ml.network import CTNet
from backend.ml.preprocess import LABELS, to_input

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
NAME, VERSION = "ctnet-covid", "1.0.0"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder with COVID/ and NonCOVID/ subfolders")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="where ctnet.pt, split.json, metrics.json go")
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--patience", type=int, default=20, help="epochs without a better validation AUC")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--widths", type=int, nargs="+", default=[24, 32, 64, 128, 192])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5, help="validation is one fold of a stratified group K-fold")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--dropout", type=float, default=0.3, help="before the linear layer")
    parser.add_argument("--blur-p", type=float, default=0.3, help="augmentation: Gaussian blur probability")
    parser.add_argument("--jpeg-p", type=float, default=0.3, help="augmentation: JPEG re-encoding probability")
    parser.add_argument("--border-p", type=float, default=0.0, help="augmentation: border erasing probability")
    parser.add_argument("--ema", type=float, default=0.0,
                        help="decay of an exponential moving average of the weights (and BatchNorm statistics), "
                             "which is then what is validated and saved; 0: off")
    parser.add_argument("--name", default=NAME)
    parser.add_argument("--version", default=VERSION)
    return parser.parse_args(argv)


# The training options that make a recipe (everything fit() needs besides the data).
RECIPE_KEYS = ("epochs", "patience", "batch_size", "lr", "weight_decay", "widths", "label_smoothing", "dropout",
               "blur_p", "jpeg_p", "border_p", "ema")


def seed_everything(seed):
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS on a GPU
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    return np.random.default_rng(seed)


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    torch.set_num_threads(args.threads)
    rng = seed_everything(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args.out.mkdir(parents=True, exist_ok=True)

    items = data.list_images(args.folder)
    train_items, val_items = data.split_by_source(items, args.seed, args.folds)
    data.save_split(args.out / "split.json", args.folder, train_items, val_items, args.seed, args.folds)
    train_gray = [shrink(data.load_gray(args.folder, rel)) for rel, _ in train_items]
    train_y = torch.tensor([LABELS.index(label) for _, label in train_items])
    val_x = torch.stack([to_input(data.load_gray(args.folder, rel)) for rel, _ in val_items]).to(device)
    val_positive = np.array([label == POSITIVE for _, label in val_items])

    network, config, best, history = fit(args, train_gray, train_y, val_x, val_positive, rng, device)

    network.load_state_dict(best["state"])
    network.cpu()
    checkpoint = {"name": args.name, "version": args.version, "labels": list(LABELS), "config": config,
                  "state_dict": network.state_dict()}
    torch.save(checkpoint, args.out / "ctnet.pt")

    classifier = Classifier.load(args.out / "ctnet.pt")
    predictions = score(classifier, args.folder, val_items)
    metrics = {
        "name": args.name, "version": args.version,
        "command": "python -m backend.ml.train " + shlex.join(sys.argv[1:] if argv is None else argv),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "device": str(device), "torch": torch.__version__, "python": platform.python_version(),
        "train_images": len(train_items), "validation_images": len(val_items),
        "epochs_run": len(history), "best_epoch": best["epoch"], "wall_time_s": round(time.time() - started, 1),
        "validation": binary_metrics([label for _, label in val_items], list(predictions.values())),
        "validation_p_covid": predictions,
        "history": history,
    }
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(json.dumps({k: metrics[k] for k in ("best_epoch", "epochs_run", "wall_time_s", "validation")}, indent=1))
    return metrics


def fit(recipe, train_gray, train_y, val_x, val_positive, rng, device, desc="train"):
    """Train a fresh CTNet; early stopping on validation AUC after `recipe.patience` epochs without a better one.

    recipe: anything with the RECIPE_KEYS attributes (the parsed arguments). Returns
    (network as after the last epoch, its weight average when `recipe.ema`; its config;
    best {"auc", "epoch", "state"}; per-epoch history).
    """
    config = {"widths": list(recipe.widths), "strides": [2, 2, 2, 2, 1][:len(recipe.widths)]}
    network = CTNet(**config, dropout=recipe.dropout).to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps = max(1, len(train_gray) // recipe.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.lr, total_steps=recipe.epochs * steps,
                                                   pct_start=0.15)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    augment_options = {"blur_p": recipe.blur_p, "jpeg_p": recipe.jpeg_p, "border_p": recipe.border_p}

    # The averaged copy, when on, is the network that is validated, kept and returned.
    averaged = torch.optim.swa_utils.AveragedModel(
        network, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(recipe.ema), use_buffers=True
    ) if recipe.ema else None
    evaluated = averaged.module if averaged else network

    best = {"auc": -1.0, "epoch": 0, "state": None}
    history = []
    bar = tqdm(range(1, recipe.epochs + 1), desc=desc, unit="epoch")
    for epoch in bar:
        network.train()
        order = rng.permutation(len(train_gray))
        losses = []
        for step in range(steps):
            batch = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
            x = torch.stack([to_input(augment(train_gray[i], rng, **augment_options)) for i in batch]).to(device)
            loss = loss_fn(network(x), train_y[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if averaged:
                averaged.update_parameters(network)
            losses.append(loss.item())
        auc = validation_auc(evaluated, val_x, val_positive)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_roc_auc": auc})
        if auc > best["auc"]:
            best = {"auc": auc, "epoch": epoch, "state": copy.deepcopy(evaluated.state_dict())}
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", auc=f"{auc:.3f}", best=f"{best['auc']:.3f}@{best['epoch']}")
        if epoch - best["epoch"] >= recipe.patience:
            break
    return evaluated, config, best, history


@torch.inference_mode()
def validation_auc(network, val_x, val_positive):
    network.eval()
    p = torch.cat([torch.softmax(network(chunk), 1)[:, 0] for chunk in val_x.split(64)]).cpu().numpy()
    return float(roc_auc_score(val_positive, p))


if __name__ == "__main__":
    main()
