"""`python -m backend analyze PATH...`: analyse files and folders of slices in one command.
`python -m backend sweep`: remove stored images that no analysis references.

Slices go through the model in batches, through the same pipeline as POST /analyze. Each batch
is split into one part per core, analysed in parallel with one PyTorch thread each: one
EfficientNet-Lite0 pass gains little from a second intra-op thread, two passes side by side
nearly double the rate. One record per file, errors included; exit 0 when every file was analysed,
2 when some were not.
"""
import argparse
import csv
import hashlib
import json
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import torch
from tqdm import tqdm

from backend import config
from backend.analysis import document, objects
from backend.analysis.pipeline import describe_slice, predict_slices
from backend.analysis.record import Stores, record_slice
from backend.app import create_app
from backend.errors import ImageStoreUnavailable, InvalidInput, StoreUnavailable
from backend.imaging import formats
from backend.imaging.dicom import WINDOWS
from backend.imaging.limits import Limits
from backend.ml.classifier import Classifier
from backend.store.base import LOCAL_OWNER
from backend.utils.helpers import encode_jpeg

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom"}
HEATMAP_QUALITY = 90  # files for people to look at, not data URLs in a document
EXIT_SOME_FAILED = 2


@dataclass
class Item:
    path: Path  # as found
    heatmap_name: Path  # relative path of its heatmap under --heatmaps


def find_slices(paths: list[str]) -> list[Item]:
    """Named files as given; folders searched recursively for PNG, JPEG and DICOM files.

    In folders, files are taken by suffix (.png .jpg .jpeg .dcm .dicom), and suffix-less files
    when they are DICOM (scanners often write IM000123); other files (notes, CSV) are skipped.
    """
    items = []
    for arg in paths:
        root = Path(arg)
        if not root.is_dir():
            items.append(Item(root, Path(root.name)))
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if path.suffix.lower() in IMAGE_SUFFIXES or (path.suffix == "" and _is_dicom(path)):
                items.append(Item(path, path.relative_to(root)))
    return items


def _is_dicom(path: Path) -> bool:
    with path.open("rb") as file:
        return formats.sniff(file.read(512)) == formats.DICOM


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m backend", description="CT slice analysis from the command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    analyze = commands.add_parser(
        "analyze", help="analyse slice files and folders",
        description="Analyse PNG, JPEG and DICOM slices (folders searched recursively), in batches through "
                    "the model. Writes one record per file: path, sha256, label, probabilities, in_distribution, "
                    "assessable, reason, model; a file "
                    "that cannot be analysed gets a record with its error code. Exit status: 0 when every "
                    "file was analysed, 2 when some were not.")
    analyze.add_argument("paths", nargs="+", metavar="PATH", help="slice files and folders")
    analyze.add_argument("--out", metavar="FILE",
                         help="write records to FILE: .jsonl (one JSON object per line) or .csv; default: "
                              "JSON lines on standard output")
    analyze.add_argument("--window", default="lung", choices=list(WINDOWS),
                         help="DICOM display window (default: lung); PNG and JPEG ignore it")
    analyze.add_argument("--heatmaps", metavar="DIR",
                         help="save each slice's heatmap overlay (400 px JPEG) under DIR, mirroring the folders")
    analyze.add_argument("--store", action="store_true",
                         help="also store each analysis as POST /analyze does (STORE, DATA_DIR, ... from the "
                              "environment); records get the analysis id")
    analyze.add_argument("--owner", default=LOCAL_OWNER, metavar="UID",
                         help=f"whose analyses they are, with --store (default: {LOCAL_OWNER!r}, the one owner of "
                              "AUTH_MODE=none; with firebase, a user's uid)")
    analyze.add_argument("--batch-size", type=int, default=16, metavar="N",
                         help="slices per step, split into one forward pass per core (TORCH_THREADS, default: "
                              "all); 1 analyses one slice at a time with every core on it (default: 16)")
    sweep = commands.add_parser(
        "sweep", help="remove stored images no analysis references",
        description="Remove objects in IMAGE_STORE (under analyses/) that no analysis document references "
                    "and that are older than --older-than-minutes: left behind when a request failed half-way "
                    "or a clean-up met an outage. Prints each removed path, then a count.")
    sweep.add_argument("--older-than-minutes", type=int, default=60, metavar="N",
                       help="only objects created at least N minutes ago (default: 60), so that requests in "
                            "flight keep theirs")
    args = parser.parse_args(argv)
    if args.command == "sweep":
        return args
    if args.out and not args.out.lower().endswith((".jsonl", ".csv")):
        parser.error("--out must name a .jsonl or a .csv file")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    return args


class Recorder:
    """Writes records as JSON lines or CSV rows (one `probability_<label>` column per label)."""

    def __init__(self, out: str | None, labels):
        self.file = open(out, "w", newline="") if out else sys.stdout
        self.csv = None
        if out and out.lower().endswith(".csv"):
            fields = ["path", "sha256", "label", "confidence", *(f"probability_{label}" for label in labels),
                      "in_distribution", "assessable", "reason", "model_name", "model_version", "id", "heatmap",
                      "error", "message"]
            self.csv = csv.DictWriter(self.file, fields)
            self.csv.writeheader()

    def write(self, record: dict):
        if self.csv:
            row = dict(record)
            for label, probability in row.pop("probabilities", {}).items():
                row[f"probability_{label}"] = probability
            if "model" in row:
                model = row.pop("model")
                row.update(model_name=model["name"], model_version=model["version"])
            self.csv.writerow(row)
        else:
            self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self):
        if self.file is not sys.stdout:
            self.file.close()


def run(args) -> int:
    settings = config.flask_config(config.load())
    classifier, stores = _open(settings, args.store)
    items = find_slices(args.paths)
    recorder = Recorder(args.out, classifier.labels)
    cores = torch.get_num_threads()
    if args.batch_size > 1:
        torch.set_num_threads(1)  # before the pool's threads start: each part gets one
    failed = 0
    try:
        with ThreadPoolExecutor(cores) as pool, \
                tqdm(total=len(items), unit="slice", file=sys.stderr, disable=None) as progress:
            for start in range(0, len(items), args.batch_size):
                batch = items[start:start + args.batch_size]
                for record in _analyse_on_cores(pool, split(batch, cores), classifier, stores, args, settings):
                    failed += "error" in record
                    recorder.write(record)
                progress.update(len(batch))
    finally:
        recorder.close()
        torch.set_num_threads(cores)
    return EXIT_SOME_FAILED if failed else 0


def split(batch: list, parts: int) -> list[list]:
    """`batch` in at most `parts` contiguous, non-empty parts of nearly equal size, in order."""
    bounds = [i * len(batch) // parts for i in range(parts + 1)]
    return [batch[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def _analyse_on_cores(pool, parts, classifier, stores, args, settings) -> list[dict]:
    """The records of every part, in order: parts side by side in the pool, a single part here."""
    def analyse(part):
        return analyse_batch(part, classifier, stores, args, settings)

    results = pool.map(analyse, parts) if len(parts) > 1 else map(analyse, parts)
    return [record for records in results for record in records]


def _open(settings: dict, with_store: bool):
    """The classifier, and the configured stores when --store asks for them (through the app's factory)."""
    if with_store:
        app = create_app({"METRICS": False})
        return app.extensions["classifier"], Stores.of(app)
    if settings["TORCH_THREADS"]:
        torch.set_num_threads(settings["TORCH_THREADS"])
    return Classifier.load(settings["MODEL_PATH"]), None


def analyse_batch(batch: list[Item], classifier, stores, args, settings) -> list[dict]:
    sources, records = [], []
    for item in batch:
        record = {"path": str(item.path)}
        try:
            data = item.path.read_bytes()
        except OSError as exc:
            record.update(error="unreadable_file", message=f"The file cannot be read ({exc.strerror}).")
            data = None
        else:
            record["sha256"] = hashlib.sha256(data).hexdigest()
        sources.append(data)
        records.append(record)

    readable = [i for i, data in enumerate(sources) if data is not None]
    answers = predict_slices([sources[i] for i in readable], classifier, args.window, Limits.from_config(settings))
    for index, answer in zip(readable, answers):
        record, item = records[index], batch[index]
        if isinstance(answer, InvalidInput):
            record.update(error=answer.code, message=answer.message)
            continue
        gray, prediction = answer
        record.update(label=prediction.label, confidence=prediction.confidence,
                      probabilities=prediction.probabilities, in_distribution=prediction.in_distribution,
                      assessable=prediction.assessable, reason=prediction.reason,
                      model={"name": classifier.name, "version": classifier.version})
        if args.heatmaps or stores is not None:
            try:
                result = describe_slice(gray, prediction)
                if args.heatmaps:
                    record["heatmap"] = str(_save_heatmap(result.overlay_400, Path(args.heatmaps), item.heatmap_name))
                if stores is not None:
                    fields = document.new_fields(uuid.uuid4().hex, args.owner, item.path.name, record["sha256"],
                                                 result, classifier, window=args.window)
                    record["id"] = record_slice(stores, fields, result, sources[index])[0]["id"]
            except (StoreUnavailable, ImageStoreUnavailable) as exc:
                record.update(error="store_unavailable", message=str(exc))
            except OSError as exc:
                record.update(error="heatmap_not_saved", message=f"The heatmap could not be written ({exc.strerror}).")
    return records


def _save_heatmap(overlay, folder: Path, name: Path) -> Path:
    path = folder / name.with_name(name.name + ".heatmap.jpg")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_jpeg(overlay, HEATMAP_QUALITY))
    return path


def sweep(args) -> int:
    app = create_app({"METRICS": False})
    image_store = app.extensions["image_store"]
    if image_store is None:
        print("IMAGE_STORE=none: no images are kept, nothing to sweep", file=sys.stderr)
        return 0
    cutoff = datetime.now(timezone.utc) - timedelta(minutes=args.older_than_minutes)
    removed = objects.sweep(image_store, app.extensions["store"], cutoff)
    for path in removed:
        print(path)
    print(f"removed {len(removed)} unreferenced object(s) older than {args.older_than_minutes} min "
          f"from IMAGE_STORE={app.config['IMAGE_STORE']}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    return sweep(args) if args.command == "sweep" else run(args)
