"""Benchmark what keeping the images costs a POST /analyze: IMAGE_STORE=local vs IMAGE_STORE=none.

Two apps in one process (both with the embedded SQLite store), the same uploads sent to each in
alternation, so background load hits both alike. Prints medians and their ratio, and the objects
step alone (render the three objects, write them in parallel), which is what the ratio measures
without the noise of a whole request on a busy machine. Asserts nothing.
    python -m bench.bench_objects [--repeat 40]
"""
import argparse
import io
import statistics
import tempfile
import time
import uuid

from backend.analysis import objects
from backend.analysis.pipeline import analyze_slice
from backend.app import create_app
from backend.images import get_image_store
from backend.ml.classifier import get_classifier
from bench.timing import median_ms
from tests.fixtures.data import covid_ct_image, dicom_file

UPLOADS = {"512x512 CT DICOM (526 KB)": lambda: (dicom_file("693_UNCR.dcm").read_bytes(), "s.dcm"),
           "COVID-CT PNG": lambda: (covid_ct_image("COVID", 0).read_bytes(), "s.png")}


def post_ms(client, data, name):
    start = time.perf_counter()
    response = client.post("/analyze", data={"file": (io.BytesIO(data), name)})
    elapsed = 1000 * (time.perf_counter() - start)
    assert response.status_code == 201, response.get_json()
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        apps = {mode: create_app({"DATA_DIR": f"{tmp}/{mode}", "IMAGE_STORE": mode, "METRICS": False,
                                  "RATE_LIMIT": "1000000/minute"}) for mode in ("none", "local")}
        clients = {mode: app.test_client() for mode, app in apps.items()}
        print(f"POST /analyze in process, SQLite documents, median of {args.repeat} alternating requests each:")
        for label, load in UPLOADS.items():
            data, name = load()
            times = {mode: [] for mode in clients}
            for _ in range(3):  # warm-up
                for client in clients.values():
                    post_ms(client, data, name)
            for round_ in range(args.repeat):
                for mode in ("none", "local") if round_ % 2 else ("local", "none"):  # neither always goes first
                    times[mode].append(post_ms(clients[mode], data, name))
            none, local = (statistics.median(times[mode]) for mode in ("none", "local"))
            print(f"  {label}")
            print(f"    IMAGE_STORE=none  (baseline)  {none:7.1f} ms")
            print(f"    IMAGE_STORE=local             {local:7.1f} ms   ({local / none:.3f}x, {local - none:+.1f} ms)")
            with apps["local"].app_context():
                result = analyze_slice(data, get_classifier())
                store = get_image_store()
                step = median_ms(lambda: objects.write(store, objects.render("local", uuid.uuid4().hex, data,
                                                                             result.jpegs)), args.repeat * 5)
            print(f"    the objects step alone        {step:7.1f} ms   ({step / none:.1%} of the baseline's median)")


if __name__ == "__main__":
    main()
