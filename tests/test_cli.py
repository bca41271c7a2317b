"""`python -m backend analyze`: a folder of real slices in one command, one record per file."""

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from backend import cli
from backend.app import create_app
from backend.store.sqlite import SQLiteStore
from tests.fixtures.data import REPO, covid_ct_image

pytestmark = pytest.mark.slow  # starts processes or trains

SLICES = [("COVID", i) for i in range(4)] + [("NonCOVID", i) for i in range(4)]

MODEL = json.loads((REPO / "backend" / "ml" / "weights" / "metrics.json").read_text())


def analyze(*args):
    """The command as a user runs it, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "backend", "analyze", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def folder(tmp_path):
    """Real slices in two sub-folders (linked, never copied), one truncated file and a note to skip."""
    root = tmp_path / "slices"
    for label, index in SLICES:
        source = covid_ct_image(label, index)
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / source.name).symlink_to(source)
    (root / "broken.png").write_bytes(covid_ct_image("COVID", 0).read_bytes()[:2000])
    (root / "notes.txt").write_text("not a slice")
    return root


def test_a_folder_with_one_broken_file_gives_a_record_for_each_and_exit_2(folder, tmp_path):
    done = analyze(
        folder, "--out", tmp_path / "results.jsonl", "--heatmaps", tmp_path / "heatmaps", "--batch-size", "3"
    )
    assert done.returncode == 2, done.stderr
    records = {r["path"]: r for r in map(json.loads, (tmp_path / "results.jsonl").read_text().splitlines())}
    assert len(records) == len(SLICES) + 1  # notes.txt is not a slice
    broken = records.pop(str(folder / "broken.png"))
    assert broken["error"] == "corrupt_image" and "label" not in broken
    for path, record in records.items():
        assert record["sha256"] == hashlib.sha256(Path(path).read_bytes()).hexdigest()
        assert record["label"] in ("COVID", "NonCOVID")
        assert sum(record["probabilities"].values()) == pytest.approx(1)
        assert record["model"] == {"name": MODEL["name"], "version": MODEL["version"]}
        heatmap = Image.open(record["heatmap"])
        assert heatmap.format == "JPEG" and max(heatmap.size) == 400
    assert {r["label"] for r in records.values()} == {"COVID", "NonCOVID"}


def test_csv_and_store_like_the_api(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    good = [folder / "COVID", folder / "NonCOVID"]
    assert cli.main(["analyze", *map(str, good), "--out", str(tmp_path / "results.csv"), "--store"]) == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "results.csv").read_text(), newline="")))
    assert len(rows) == len(SLICES)
    store = SQLiteStore(tmp_path / "data")
    assert len(store.list(100)[0]) == len(SLICES)
    for row in rows:
        stored = store.get(row["id"])
        assert stored["sha256"] == row["sha256"] and stored["prediction"]["label"] == row["label"]
        assert stored["prediction"]["probabilities"]["COVID"] == pytest.approx(float(row["probability_COVID"]))
        assert str(stored["prediction"]["in_distribution"]) == row["in_distribution"]
        assert stored["file_thumbnail"].startswith("data:image/jpeg;base64,") and stored["findings"]
        original = next(entry for entry in stored["images"] if entry["name"] == "original")
        assert (tmp_path / "data" / "images" / original["path"]).read_bytes() == Path(row["path"]).read_bytes()


def test_batched_answers_match_the_api(client, folder, capsys):
    assert cli.main(["analyze", str(folder / "COVID"), "--batch-size", "4"]) == 0
    for record in map(json.loads, capsys.readouterr().out.splitlines()):
        data = Path(record["path"]).read_bytes()
        answer = client.post("/analyze", data={"file": (io.BytesIO(data), "s.png")}).get_json()
        assert answer["prediction"]["label"] == record["label"]
        assert answer["prediction"]["in_distribution"] == record["in_distribution"]
        for label, probability in answer["prediction"]["probabilities"].items():
            assert record["probabilities"][label] == pytest.approx(probability, abs=1e-6)


def test_batches_split_across_cores_give_the_same_records_in_the_same_order(folder, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_THREADS", "2")  # two parts per batch even where there is one core
    runs = {}
    for batch_size in ("1", "5"):
        assert cli.main(["analyze", str(folder / "COVID"), str(folder / "NonCOVID"), "--batch-size", batch_size]) == 0
        runs[batch_size] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (
        [r["path"] for r in runs["5"]]
        == [r["path"] for r in runs["1"]]
        == [str(folder / label / covid_ct_image(label, index).name) for label, index in SLICES]
    )
    for alone, batched in zip(runs["1"], runs["5"], strict=True):
        assert batched["label"] == alone["label"]
        assert batched["probabilities"]["COVID"] == pytest.approx(alone["probabilities"]["COVID"], abs=1e-6)
    assert cli.split(list(range(5)), 2) == [[0, 1], [2, 3, 4]] and cli.split([7], 4) == [[7]]


def test_help_documents_the_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["analyze", "--help"])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    for option in ("--out", "--window", "--heatmaps", "--store", "Exit status"):
        assert option in shown


def test_sweep_removes_old_objects_no_analysis_references_and_says_which(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    app = create_app({"TESTING": True})
    client = app.test_client()
    kept = client.post("/analyze", data={"file": (io.BytesIO(covid_ct_image("COVID", 0).read_bytes()), "s.png")})
    images = tmp_path / "data" / "images"
    orphans = {
        "analyses/local/crashed/slice.jpg": 2 * 3600,
        "analyses/bob/gone/original": 3700,
        "analyses/local/in-flight/heatmap.jpg": 60,
    }  # path: age in seconds
    for path, age in orphans.items():
        (images / path).parent.mkdir(parents=True, exist_ok=True)
        (images / path).write_bytes(b"left behind")
        os.utime(images / path, (time.time() - age, time.time() - age))
    for entry in kept.get_json()["images"]:  # old too, but referenced
        os.utime(images / entry["path"], (time.time() - 7200, time.time() - 7200))

    assert cli.main(["sweep"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["analyses/bob/gone/original", "analyses/local/crashed/slice.jpg"]
    assert "removed 2 unreferenced object(s) older than 60 min" in err
    assert sorted(p.relative_to(images).as_posix() for p in images.rglob("*") if p.is_file()) == sorted(
        ["analyses/local/in-flight/heatmap.jpg", *(entry["path"] for entry in kept.get_json()["images"])]
    )
    assert client.get(f"/analyses/{kept.get_json()['id']}/images/slice.jpg").status_code == 200


def test_series_mode_gives_one_record_per_study_and_a_row_per_slice(tmp_path):
    """A folder and a ZIP of the real series: the same study twice, as POST /studies would answer it."""
    from tests.fixtures.data import ct_series_dir
    from tests.fixtures.series import make_zip, series_bytes

    (tmp_path / "a0002.zip").write_bytes(make_zip(series_bytes()))
    done = analyze(
        "--studies",
        ct_series_dir(),
        tmp_path / "a0002.zip",
        tmp_path / "missing",
        "--out",
        tmp_path / "studies.jsonl",
        "--slices-out",
        tmp_path / "slices.csv",
    )
    assert done.returncode == 2, done.stderr  # the missing folder is the one failure
    folder, archive, missing = map(json.loads, (tmp_path / "studies.jsonl").read_text().splitlines())
    assert missing["error"] == "unreadable_file"
    for record in (folder, archive):
        assert record["slice_count"] == 30 and record["label"] in ("COVID", "NonCOVID")
        assert record["study_uid"].startswith("1.3.6.1.4.1.14519") and record["series_uid"]
        assert 1 <= len(record["key_slices"]) <= 8 and record["model_version"] == MODEL["version"]
    assert archive["score"] == pytest.approx(folder["score"], abs=1e-6)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "slices.csv").read_text(), newline="")))
    assert len(rows) == 60
    zs = [float(r["z"]) for r in rows if r["path"] == str(ct_series_dir())]
    assert zs == sorted(zs) and len(zs) == 30
    assert {r["index"] for r in rows} == {str(i) for i in range(30)}


def test_sweep_removes_a_received_series_no_study_was_made_of_and_keeps_the_studys(tmp_path, monkeypatch, capsys):
    """A modality sends two series by C-STORE: one becomes a study, the other is one slice too long to be one
    (logged and left by the listener). Once old, the sweep removes the second and keeps the first."""
    import pydicom
    from pydicom.uid import generate_uid

    from backend.app import start_dicom
    from backend.dicom.collector import received_folder
    from tests.fixtures.dicom_peer import c_store, listening
    from tests.fixtures.series import series_bytes

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    settings = listening()
    app = create_app({"TESTING": True, "STUDY_MAX_SLICES": 3, **settings})
    real = series_bytes()
    studied = {n: real[n] for n in list(real)[12:14]}
    too_long, other_series = {}, generate_uid()
    for name in list(real)[14:18]:
        ds = pydicom.dcmread(io.BytesIO(real[name]))
        ds.SeriesInstanceUID = other_series
        buffer = io.BytesIO()
        ds.save_as(buffer)
        too_long[name] = buffer.getvalue()
    images = tmp_path / "data" / "images"
    received = images / "dicom" / "received"
    listener = start_dicom(app)
    try:
        c_store(settings["DICOM_PORT"], "MODALITY", studied)
        c_store(settings["DICOM_PORT"], "MODALITY", too_long)
        deadline = time.monotonic() + 60
        while len(list(received.glob("*/sets/*.json"))) < 2:  # both series judged: each set recorded
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        listener.stop()
    [study] = app.extensions["store"].list_studies(10)[0]
    assert study["slice_count"] == 2
    folder = received_folder(other_series, "MODALITY")
    held = sorted(p.relative_to(images).as_posix() for p in (images / folder).rglob("*") if p.is_file())
    for path in received.rglob("*"):
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    assert cli.main(["sweep"]) == 0
    swept = capsys.readouterr().out.splitlines()
    assert swept == held  # the refused series' instances and the record of its set
    assert len(swept) == len(too_long) + 1 and not (images / folder).exists()
    assert len(list(received.rglob("*.dcm"))) == len(studied)  # the study's series, kept


def test_sweep_keeps_a_studys_objects_and_removes_orphaned_ones(tmp_path, monkeypatch, capsys):
    from tests.fixtures.series import files_form, series_bytes

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    app = create_app({"TESTING": True})
    client = app.test_client()
    real = series_bytes()
    study = client.post("/studies", data=files_form({n: real[n] for n in list(real)[12:14]})).get_json()
    deadline = time.monotonic() + 120
    while client.get(f"/studies/{study['id']}").get_json()["status"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    images = tmp_path / "data" / "images"
    orphan = images / "studies/local/gone-study/dicom/00000.dcm"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"left by a crash")
    for path in images.rglob("*"):
        if path.is_file():
            os.utime(path, (time.time() - 7200, time.time() - 7200))
    assert cli.main(["sweep"]) == 0
    assert capsys.readouterr().out.splitlines() == ["studies/local/gone-study/dicom/00000.dcm"]
    kept = sorted(p.relative_to(images).as_posix() for p in images.rglob("*") if p.is_file())
    answer = client.get(f"/studies/{study['id']}").get_json()
    results = 1 + len(answer["key_slices"])  # the SR and a key image per key slice
    assert len(kept) == 2 + 2 * 2 + results and all(study["id"] in path for path in kept)
