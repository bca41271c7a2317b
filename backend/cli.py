"""`python -m backend analyze PATH...`: analyse files and folders of slices in one command;
`python -m backend analyze --studies DIR...`: each folder or ZIP of DICOM files as one study.
`python -m backend sweep`: remove stored images that no analysis or study references.
`python -m backend worker`: run studies from Pub/Sub (STUDY_QUEUE=pubsub).

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import torch
from tqdm import tqdm

from backend import config
from backend.analysis import document, objects
from backend.analysis.batches import core_pool, on_cores, split  # noqa: F401 (split: tests call cli.split)
from backend.analysis.pipeline import describe_slice, predict_slices
from backend.analysis.record import Stores, record_slice
from backend.analysis.study import COLUMNS, analyse_series
from backend.app import create_app
from backend.dicom.collector import sweep_received
from backend.errors import ImageStoreUnavailable, InvalidInput, StoreUnavailable
from backend.imaging import archive, formats
from backend.imaging.dicom import WINDOWS
from backend.imaging.limits import Limits
from backend.imaging.series import plan
from backend.ml.classifier import Classifier, model_cache_dir
from backend.store.base import LOCAL_OWNER
from backend.studies.create import received_folders
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
        "analyze",
        help="analyse slice files and folders",
        description="Analyse PNG, JPEG and DICOM slices (folders searched recursively), in batches through "
        "the model. Writes one record per file: path, sha256, label, probabilities, in_distribution, "
        "assessable, reason, model; a file "
        "that cannot be analysed gets a record with its error code. Exit status: 0 when every "
        "file was analysed, 2 when some were not.",
    )
    analyze.add_argument("paths", nargs="+", metavar="PATH", help="slice files and folders")
    analyze.add_argument(
        "--out",
        metavar="FILE",
        help="write records to FILE: .jsonl (one JSON object per line) or .csv; default: JSON lines on standard output",
    )
    analyze.add_argument(
        "--window",
        default="lung",
        choices=list(WINDOWS),
        help="DICOM display window (default: lung); PNG and JPEG ignore it",
    )
    analyze.add_argument(
        "--heatmaps",
        metavar="DIR",
        help="save each slice's heatmap overlay (400 px JPEG) under DIR, mirroring the folders",
    )
    analyze.add_argument(
        "--store",
        action="store_true",
        help="also store each analysis as POST /analyze does (STORE, DATA_DIR, ... from the "
        "environment); records get the analysis id",
    )
    analyze.add_argument(
        "--owner",
        default=LOCAL_OWNER,
        metavar="UID",
        help=f"whose analyses they are, with --store (default: {LOCAL_OWNER!r}, the one owner of "
        "AUTH_MODE=none; with firebase, a user's uid)",
    )
    analyze.add_argument(
        "--studies",
        action="store_true",
        help="series mode: each PATH (a folder, searched recursively, or a ZIP) is one study of DICOM "
        "files; one record per study: study and series UIDs, slice count, score, label, key "
        "slice indexes",
    )
    analyze.add_argument(
        "--slices-out",
        metavar="FILE",
        help="with --studies: write one row per slice to FILE (.jsonl or .csv): path, index, "
        "instance_number, sop_instance_uid, z, probability, label, assessable",
    )
    analyze.add_argument(
        "--batch-size",
        type=int,
        default=16,
        metavar="N",
        help="slices per step, split into one forward pass per core (TORCH_THREADS, default: "
        "all); 1 analyses one slice at a time with every core on it (default: 16)",
    )
    sweep = commands.add_parser(
        "sweep",
        help="remove stored images no analysis or study references",
        description="Remove objects in IMAGE_STORE that are older than --older-than-minutes and that no "
        "analysis or study references (under analyses/ and studies/: left behind when a request failed "
        "half-way or a clean-up met an outage), and received DICOM series that no study was made of "
        "(under dicom/received/: refused as a study, or given up). Prints each removed path, then a count.",
    )
    sweep.add_argument(
        "--older-than-minutes",
        type=int,
        default=60,
        metavar="N",
        help="only objects created at least N minutes ago (default: 60), so that requests in flight keep theirs",
    )
    commands.add_parser(
        "worker",
        help="run studies from Pub/Sub (STUDY_QUEUE=pubsub)",
        description="Pull studies from the Pub/Sub subscription PUBSUB_SUBSCRIPTION (on PUBSUB_TOPIC, both made "
        "when missing) and analyse them one at a time, with the stores the service uses (STORE, "
        "IMAGE_STORE, ...). Run any number, on any machine. SIGTERM: the study in progress goes back "
        "to the queue after its current batch.",
    )
    args = parser.parse_args(argv)
    if args.command in ("sweep", "worker"):
        return args
    if args.slices_out and not args.studies:
        parser.error("--slices-out needs --studies")
    if args.slices_out and not args.slices_out.lower().endswith((".jsonl", ".csv")):
        parser.error("--slices-out must name a .jsonl or a .csv file")
    if args.out and not args.out.lower().endswith((".jsonl", ".csv")):
        parser.error("--out must name a .jsonl or a .csv file")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    return args


class Recorder:
    """Writes records as JSON lines or CSV rows (one `probability_<label>` column per label)."""

    def __init__(self, out: str | None, labels):
        self.file = open(out, "w", newline="") if out else sys.stdout  # noqa: SIM115 (closed by close())
        self.csv = None
        if out and out.lower().endswith(".csv"):
            fields = [
                "path",
                "sha256",
                "label",
                "confidence",
                *(f"probability_{label}" for label in labels),
                "in_distribution",
                "assessable",
                "reason",
                "model_name",
                "model_version",
                "id",
                "heatmap",
                "error",
                "message",
            ]
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
    failed = 0
    try:
        with (
            core_pool(cores, batched=args.batch_size > 1) as pool,
            tqdm(total=len(items), unit="slice", file=sys.stderr, disable=None) as progress,
        ):
            for start in range(0, len(items), args.batch_size):
                batch = items[start : start + args.batch_size]
                for record in on_cores(
                    pool, batch, cores, lambda part: analyse_batch(part, classifier, stores, args, settings)
                ):
                    failed += "error" in record
                    recorder.write(record)
                progress.update(len(batch))
    finally:
        recorder.close()
    return EXIT_SOME_FAILED if failed else 0


def _open(settings: dict, with_store: bool):
    """The classifier, and the configured stores when --store asks for them (through the app's factory)."""
    if with_store:
        app = create_app({"METRICS": False})
        return app.extensions["classifier"], Stores.of(app)
    if settings["TORCH_THREADS"]:
        torch.set_num_threads(settings["TORCH_THREADS"])
    return Classifier.load(settings["MODEL_PATH"], model_cache_dir(settings)), None


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
    for index, answer in zip(readable, answers, strict=True):
        record, item = records[index], batch[index]
        if isinstance(answer, InvalidInput):
            record.update(error=answer.code, message=answer.message)
            continue
        gray, prediction = answer
        record.update(
            label=prediction.label,
            confidence=prediction.confidence,
            probabilities=prediction.probabilities,
            in_distribution=prediction.in_distribution,
            assessable=prediction.assessable,
            reason=prediction.reason,
            model={"name": classifier.name, "version": classifier.version},
        )
        if args.heatmaps or stores is not None:
            try:
                result = describe_slice(gray, prediction)
                if args.heatmaps:
                    record["heatmap"] = str(_save_heatmap(result.overlay_400, Path(args.heatmaps), item.heatmap_name))
                if stores is not None:
                    fields = document.new_fields(
                        uuid.uuid4().hex,
                        args.owner,
                        item.path.name,
                        record["sha256"],
                        result,
                        classifier,
                        window=args.window,
                    )
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
    cutoff = datetime.now(UTC) - timedelta(minutes=args.older_than_minutes)
    documents = app.extensions["store"]
    removed = objects.sweep(image_store, documents, cutoff)
    removed += sweep_received(image_store, received_folders(documents), cutoff)
    for path in removed:
        print(path)
    print(
        f"removed {len(removed)} unreferenced object(s) older than {args.older_than_minutes} min "
        f"from IMAGE_STORE={app.config['IMAGE_STORE']}",
        file=sys.stderr,
    )
    return 0


def worker(args) -> int:
    settings = config.flask_config(config.load())
    if settings["STUDY_QUEUE"] != "pubsub":
        print(
            "error: the worker runs studies from Pub/Sub: set STUDY_QUEUE=pubsub (and PUBSUB_PROJECT); with "
            "STUDY_QUEUE=local the service runs its studies itself",
            file=sys.stderr,
        )
        return 1
    from backend.studies import settings_of
    from backend.studies.pubsub import Worker

    app = create_app({"METRICS": False})
    runner = Worker(Stores.of(app), app.extensions["classifier"], app.config, settings_of(app))
    try:
        runner.serve()
    finally:
        runner.close()
    return 0


STUDY_RECORD_FIELDS = [
    "path",
    "study_uid",
    "series_uid",
    "series_description",
    "slice_count",
    "assessable_slices",
    "score",
    "label",
    "threshold",
    "key_slices",
    "model_name",
    "model_version",
    "error",
    "message",
]
SLICE_ROW_FIELDS = ["path", "index", *COLUMNS]  # a study's per-slice columns, with where each came from


class RowWriter:
    """JSON lines, or CSV rows with `fields` (lists joined by spaces), to FILE or standard output."""

    def __init__(self, out: str | None, fields: list[str]):
        self.file = open(out, "w", newline="") if out else sys.stdout  # noqa: SIM115 (closed by close())
        self.csv = csv.DictWriter(self.file, fields) if out and out.lower().endswith(".csv") else None
        if self.csv:
            self.csv.writeheader()

    def write(self, row: dict):
        if self.csv:
            self.csv.writerow({k: " ".join(map(str, v)) if isinstance(v, list) else v for k, v in row.items()})
        else:
            self.file.write(json.dumps(row) + "\n")
        self.file.flush()

    def close(self):
        if self.file is not sys.stdout:
            self.file.close()


def study_members(path: Path, limits) -> "archive.Upload":
    """A folder's files (recursively, in name order; the order of slices comes from their headers) or a ZIP's."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        upload = archive.Upload([archive.Member(str(p.relative_to(path)), p.read_bytes) for p in files])
        if len(files) > limits.max_entries:
            raise InvalidInput("too_many_slices", maximum=limits.max_slices)
        return upload
    with path.open("rb") as file:
        head = file.read(4)
    if head in archive.ZIP_MAGIC:
        return archive.collect([(path.name, path.open("rb"))], limits)
    return archive.Upload([archive.Member(path.name, path.read_bytes)])


def run_studies(args) -> int:
    """Series mode: each PATH one study, analysed as POST /studies analyses it (without storing)."""
    settings = config.flask_config(config.load())
    classifier, _ = _open(settings, False)
    limits = archive.StudyLimits.from_config(settings)
    out = RowWriter(args.out, STUDY_RECORD_FIELDS)
    slices_out = RowWriter(args.slices_out, SLICE_ROW_FIELDS) if args.slices_out else None
    cores = torch.get_num_threads()
    failed = 0
    try:
        with core_pool(cores, batched=args.batch_size > 1) as pool:
            for path in args.paths:
                record = {"path": path}
                try:
                    series = plan(study_members(Path(path), limits), limits)
                    slices = series.slices
                    answer = analyse_series(
                        lambda i, slices=slices: slices[i].member.read(),
                        len(slices),
                        classifier,
                        args.window,
                        Limits.from_config(settings),
                        pool,
                        cores,
                        args.batch_size,
                    )
                except (InvalidInput, OSError) as exc:
                    failed += 1
                    code = exc.code if isinstance(exc, InvalidInput) else "unreadable_file"
                    out.write({**record, "error": code, "message": getattr(exc, "message", str(exc))})
                    continue
                prediction = answer.prediction()
                record.update(
                    study_uid=series.study_uid,
                    series_uid=series.series_uid,
                    series_description=series.description,
                    slice_count=len(series.slices),
                    assessable_slices=prediction["assessable_slices"],
                    score=prediction["score"],
                    label=prediction["label"],
                    threshold=prediction["threshold"],
                    key_slices=[c.index for c in answer.key_candidates()],
                    model_name=classifier.name,
                    model_version=classifier.version,
                )
                out.write(record)
                counted = {o.index for o in answer.counted}
                for slice_, outcome in zip(series.slices, answer.outcomes, strict=True) if slices_out else ():
                    row = {
                        "path": path,
                        "index": outcome.index,
                        "instance_number": slice_.header.instance_number,
                        "sop_instance_uid": slice_.header.sop_uid,
                        "z": slice_.z,
                        "probability": outcome.probability,
                        "label": outcome.label,
                        "assessable": outcome.assessable,
                        "counted": outcome.index in counted,
                        "reason": outcome.reason,
                    }
                    slices_out.write({**row, "error": outcome.error} if outcome.error else row)
    finally:
        out.close()
        if slices_out:
            slices_out.close()
    return EXIT_SOME_FAILED if failed else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.command == "sweep":
        return sweep(args)
    if args.command == "worker":
        return worker(args)
    return run_studies(args) if args.studies else run(args)
