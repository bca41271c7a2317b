"""Load: POST /analyze under gunicorn and under waitress with 1, 4, 8 and 16 concurrent clients.

Prints throughput and p50/p95 latency per level, each as a ratio to one client in the same run;
the 1-client median against the in-process floor (decode + forward with CAM + the four JPEG
encodes); the batch command's throughput batched vs one slice at a time; memory per worker.
Asserts nothing. Clients run in this process, so they share the machine's cores with the server.
    python -m bench.bench_load [--seconds 10] [--clients 1 4 8 16] [--cli-slices 256]
"""
import argparse
import os
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import torch

from backend import cli
from backend.analysis.pipeline import analyze_slice
from backend.config import DEFAULT_MODEL_PATH
from backend.ml.classifier import Classifier
from backend.utils.helpers import create_thumbnail, download_image, fit_to_box, upload_to_storage
from bench.timing import median_ms
from tests.fixtures.data import covid_ct_dir
from tests.fixtures.http import multipart
from tests.fixtures.metrics import samples, value
from tests.fixtures.server import GUNICORN, started_server

CORES = len(os.sched_getaffinity(0))
DEFAULT_TORCH_THREADS = torch.get_num_threads()  # what the batch command uses unless TORCH_THREADS is set

# Benchmarks measure the service, not the per-owner rate limit (RATE_LIMIT).
UNLIMITED = "1000000/minute"


def real_slices(count):
    """`count` real slices, alternating classes, in name order."""
    root = covid_ct_dir()
    covid, noncovid = sorted((root / "COVID").iterdir()), sorted((root / "NonCOVID").iterdir())
    return [path for pair in zip(covid, noncovid) for path in pair][:count]


def load(base_url, bodies, clients, seconds):
    """`clients` threads uploading in a loop for `seconds`: (requests per second, latencies in ms, errors)."""
    latencies, errors, stop = [], [], time.monotonic() + seconds

    def client(offset):
        i = offset
        while time.monotonic() < stop:
            body, headers = bodies[i % len(bodies)]
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(urllib.request.Request(base_url + "/analyze", body, headers),
                                            timeout=120) as response:
                    response.read()
                latencies.append(1000 * (time.perf_counter() - started))
            except (urllib.error.URLError, OSError) as exc:
                errors.append(exc)
            i += clients

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies) / (time.monotonic() - began), latencies, errors


def percentile(values, q):
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def memory_mib(pid):
    """(RSS, PSS) of a process in MiB; PSS splits pages shared with forked siblings fairly."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) / 1024
    return fields["Rss"], fields["Pss"]


def service_pids(process):
    """The gunicorn workers (children of the master), or the waitress process itself."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    return [int(pid) for pid in children] or [process.pid]


def bench_server(name, argv, env, bodies, levels, seconds):
    print(f"\n{name}")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        with started_server({"DATA_DIR": tmp, "LOG_LEVEL": "WARNING", "RATE_LIMIT": UNLIMITED, **env},
                            argv=argv, log_path=log, timeout_s=180) as server:
            load(server.base_url, bodies, 2, 3)  # warm up every worker
            base = None
            for clients in levels:
                rate, latencies, errors = load(server.base_url, bodies, clients, seconds)
                p50, p95 = statistics.median(latencies), percentile(latencies, 95)
                base = base or (rate, p50, p95)
                print(f"  {clients:2d} clients  {rate:6.2f} req/s ({rate / base[0]:4.2f}x)   "
                      f"p50 {p50:7.1f} ms ({p50 / base[1]:4.2f}x)   p95 {p95:7.1f} ms ({p95 / base[2]:4.2f}x)"
                      + (f"   {len(errors)} errors" if errors else ""))
                if clients == levels[0]:
                    one_client_p50 = p50
            print("  " + stage_means(server.base_url))
            for pid in service_pids(server.process):
                rss, pss = memory_mib(pid)
                print(f"  process {pid}: RSS {rss:6.1f} MiB, PSS {pss:6.1f} MiB")
    return one_client_p50


def stage_means(base_url):
    """Mean ms per analysis stage and per POST /analyze over the whole run, from the service's /metrics."""
    with urllib.request.urlopen(base_url + "/metrics") as response:
        scraped = samples(response.read().decode())

    def mean(name, **labels):
        count = value(scraped, name + "_count", **labels)
        return 1000 * value(scraped, name + "_sum", **labels) / count if count else float("nan")

    stages = ", ".join(f"{stage} {mean('analysis_stage_duration_seconds', stage=stage):.1f}"
                       for stage in ("decode", "model", "images", "findings", "store"))
    whole = mean("http_request_duration_seconds", method="POST", route="/analyze", status="201")
    return f"mean ms over all levels (from /metrics): {stages}; whole POST /analyze {whole:.1f}"


def in_process_floor(paths, classifier, repeat):
    """Median ms of decode + forward with CAM + the four JPEG encodes; and of the whole analyze_slice."""
    datas = [p.read_bytes() for p in paths]
    overlays = [analyze_slice(data, classifier).overlay_400 for data in datas]  # made outside the timing
    state = {"i": 0}

    def floor():
        n = state["i"] % len(datas)
        state["i"] += 1
        gray = download_image(datas[n])
        classifier.predict(gray)
        for image in (fit_to_box(gray, (400, 400)), overlays[n]):
            upload_to_storage(image)
            create_thumbnail(image)

    def whole():
        analyze_slice(datas[state["i"] % len(datas)], classifier)
        state["i"] += 1

    return median_ms(floor, repeat, warmup=3), median_ms(whole, repeat, warmup=3)


def cli_throughput(paths, batch_size):
    """Slices per second through the batch command's own loop (records to a file), given a batch size."""
    with tempfile.TemporaryDirectory() as tmp:
        links = Path(tmp) / "slices"
        links.mkdir()
        for n, path in enumerate(paths):
            (links / f"{n:04d}{path.suffix}").symlink_to(path)
        args = argparse.Namespace(paths=[str(links)], out=str(Path(tmp) / "r.jsonl"), window="lung",
                                   heatmaps=None, store=False, batch_size=batch_size)
        started = time.perf_counter()
        cli.run(args)
        return len(paths) / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10, help="per concurrency level")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--slices", type=int, default=64, help="real slices uploaded in turn")
    parser.add_argument("--cli-slices", type=int, default=256,
                        help="real slices per batch command run (its start, loading the model, counts too)")
    args = parser.parse_args()

    paths = real_slices(args.slices)
    bodies = [multipart("file", p.name, p.read_bytes()) for p in paths]
    print(f"{CORES} CPU cores, PyTorch {torch.__version__}; {len(paths)} real COVID-CT slices uploaded in turn; {args.seconds:g} s per level")

    # In-process figures with one torch thread, as each gunicorn worker on this machine has.
    torch.set_num_threads(1)
    classifier = Classifier.load(DEFAULT_MODEL_PATH)
    floor, whole = in_process_floor(paths, classifier, 40)
    print("\nin process (no HTTP, no store; 1 torch thread), median:")
    print(f"  decode + forward with CAM + 4 JPEG encodes (floor)  {floor:7.1f} ms")
    print(f"  whole analyze_slice (+ masks, overlay, findings)    {whole:7.1f} ms  ({whole / floor:.2f}x floor)")

    print(f"\nbatch command on {args.cli_slices} slices (start, decode + forward with CAM + records):")
    cli_paths = real_slices(args.cli_slices)
    for threads in (DEFAULT_TORCH_THREADS, 1):
        torch.set_num_threads(threads)
        one_at_a_time, batched = cli_throughput(cli_paths, 1), cli_throughput(cli_paths, 16)
        print(f"  {threads} torch thread(s): --batch-size 1 {one_at_a_time:6.1f} slices/s, "
              f"--batch-size 16 {batched:6.1f} slices/s  ({batched / one_at_a_time:.2f}x)")

    workers = int(os.environ.get("WEB_CONCURRENCY") or CORES)
    gunicorn_env = {"WEB_CONCURRENCY": str(workers), "TORCH_THREADS": str(max(1, CORES // workers))}
    gunicorn_p50 = bench_server(f"gunicorn: {workers} gthread workers x 4 threads, "
                                f"{gunicorn_env['TORCH_THREADS']} torch thread(s) each",
                                GUNICORN, gunicorn_env, bodies, args.clients, args.seconds)
    waitress_p50 = bench_server("waitress (python backend/app.py): 1 process, 8 threads, PyTorch's default threads",
                                None, {"TORCH_THREADS": ""}, bodies, args.clients, args.seconds)
    print("\nPOST /analyze with one client vs the in-process floor:")
    print(f"  gunicorn p50 {gunicorn_p50:7.1f} ms  ({gunicorn_p50 / floor:.2f}x floor)")
    print(f"  waitress p50 {waitress_p50:7.1f} ms  ({waitress_p50 / floor:.2f}x floor)")


if __name__ == "__main__":
    main()
