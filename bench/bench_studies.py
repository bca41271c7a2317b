"""A long real series through POST /studies to `done`, against the batch command on the same slices, in one run.

The series is made from the real one (../shared/data/ct-series/lung-pet-ct-dx-a0002, 30 slices) by stacking
re-positioned copies (new ImagePositionPatient, SliceLocation, InstanceNumber, SOP Instance UID): 300 slices by
default. Prints, asserting nothing:
- the batch command, `python -m backend analyze --studies DIR`, its whole run (start included) and the
  series alone in process (the same function, no start, no HTTP, no objects);
- `python backend/app.py` (STUDY_QUEUE=local, default settings): the upload as a ZIP answered 202, then
  queued -> done (every slice's images written as objects, progress in the document), and the ratio to the
  batch command (goal <= 1.3x);
- the service's memory: idle, and its peak (VmHWM) over the study (the hostile-input bound is 1.5 GiB).

    python -m bench.bench_studies [--slices 300] [--repeat 3] [--memory-slices 1000]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fixtures.http import multipart, request
from tests.fixtures.series import make_zip, repositioned, series_bytes
from tests.fixtures.server import started_server

REPO = Path(__file__).resolve().parents[1]

GOAL_RATIO = 1.3
GOAL_MIB = 1536


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def memory_mib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def series_of(slices: int) -> dict[str, bytes]:
    real = series_bytes()
    copies = -(-slices // len(real))
    stacked = repositioned(real, copies)
    return dict(list(stacked.items())[:slices])


def batch_command(folder: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "backend", "analyze", "--studies", str(folder)], cwd=REPO,
                          capture_output=True, text=True, check=True)
    return time.perf_counter() - start, json.loads(done.stdout.splitlines()[-1])


def in_process(folder: Path) -> float:
    import torch

    from backend.analysis.batches import core_pool
    from backend.analysis.study import analyse_series
    from backend.config import DEFAULT_MODEL_PATH
    from backend.imaging.archive import Member, StudyLimits, Upload
    from backend.imaging.limits import Limits
    from backend.imaging.series import plan
    from backend.ml.classifier import Classifier

    classifier = Classifier.load(DEFAULT_MODEL_PATH)
    cores = torch.get_num_threads()
    start = time.perf_counter()
    series = plan(Upload([Member(p.name, p.read_bytes) for p in sorted(folder.iterdir())]), StudyLimits())
    with core_pool(cores) as pool:
        analyse_series(lambda i: series.slices[i].member.read(), len(series.slices), classifier, "lung", Limits(),
                       pool, cores, 16)
    return time.perf_counter() - start


def through_the_service(data_dir: Path, archive: bytes, slices: int) -> dict:
    with started_server({"STORE": "sqlite", "DATA_DIR": str(data_dir), "TORCH_THREADS": ""},
                        timeout_s=120) as server:
        pid = server.process.pid
        # one study first, so the idle figure is of a service that has run one (as bench_memory's is)
        warm = series_of(30)
        status, _, body = request("POST", server.base_url + "/studies", *multipart("file", "w.zip", make_zip(warm)))
        warm_id = json.loads(body)["id"]
        while json.loads(request("GET", f"{server.base_url}/studies/{warm_id}")[2])["status"] != "done":
            time.sleep(0.2)
        idle = memory_mib(pid, "VmRSS")
        start = time.perf_counter()
        status, _, body = request("POST", server.base_url + "/studies", *multipart("file", "series.zip", archive))
        accepted = time.perf_counter() - start
        assert status == 202, body
        study_id = json.loads(body)["id"]
        while True:
            doc = json.loads(request("GET", f"{server.base_url}/studies/{study_id}")[2])
            if doc["status"] in ("done", "failed"):
                break
            time.sleep(0.1)
        total = time.perf_counter() - start
        return {"accepted_s": accepted, "total_s": total, "status": doc["status"], "idle_mib": idle,
                "peak_mib": memory_mib(pid, "VmHWM"), "score": doc.get("prediction", {}).get("score"),
                "slices": doc["slice_count"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds, each the batch command then the service, alternating; medians are printed")
    parser.add_argument("--memory-slices", type=int, default=0,
                        help="also send a series of this many slices and print the service's peak (e.g. 1000)")
    args = parser.parse_args()
    import torch

    print(f"{os.cpu_count()} CPU cores, PyTorch {torch.__version__}; a {args.slices}-slice series made from the "
          f"real 30-slice one; {args.repeat} round(s), medians")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "series"
        folder.mkdir()
        series = series_of(args.slices)
        for name, data in series.items():
            (folder / name).write_bytes(data)
        archive = make_zip(series)
        commands, services, alone = [], [], []
        for round_ in range(args.repeat):
            command_s, record = batch_command(folder)
            commands.append(command_s)
            alone.append(in_process(folder))
            services.append(through_the_service(tmp / f"data-{round_}", archive, args.slices))
        command_s, alone_s = statistics.median(commands), statistics.median(alone)
        service_s = statistics.median(s["total_s"] for s in services)
        service = services[-1]
        print(f"batch command (python -m backend analyze --studies): {command_s:6.1f} s whole run, start included "
              f"({args.slices / command_s:.1f} slices/s); score {record['score']:.4f}   "
              f"[{', '.join(f'{t:.1f}' for t in commands)}]")
        print(f"  the series alone in process (analyse_series, no start):   {alone_s:6.1f} s   "
              f"[{', '.join(f'{t:.1f}' for t in alone)}]")
        print(f"POST /studies -> done (python backend/app.py, local queue): {service_s:6.1f} s "
              f"(202 after {statistics.median(s['accepted_s'] for s in services):.1f} s: upload, headers, "
              f"{args.slices} DICOM objects); {service['status']}, score {service['score']:.4f}   "
              f"[{', '.join(f'{t:.1f}' for t in (s_['total_s'] for s_ in services))}]")
        ratio = service_s / command_s
        print(f"  ratio to the batch command: {ratio:.2f}x (goal <= {GOAL_RATIO}x: {verdict(ratio <= GOAL_RATIO)}); "
              f"to the series alone: {service_s / alone_s:.2f}x")
        peak = max(s["peak_mib"] for s in services)
        print(f"service memory: idle {service['idle_mib']:.0f} MiB, peak over the {args.slices}-slice study "
              f"{peak:.0f} MiB (goal < {GOAL_MIB} MiB: {verdict(peak < GOAL_MIB)})")
        if args.memory_slices:
            big = series_of(args.memory_slices)
            result = through_the_service(tmp / "data-big", make_zip(big), args.memory_slices)
            print(f"{args.memory_slices}-slice study: {result['status']} in {result['total_s']:.1f} s, service peak "
                  f"{result['peak_mib']:.0f} MiB (goal < {GOAL_MIB} MiB: {verdict(result['peak_mib'] < GOAL_MIB)})")


if __name__ == "__main__":
    main()
