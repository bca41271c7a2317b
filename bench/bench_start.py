"""How long the real service takes to start, with and without the compiled model kept from an earlier start.

Starts `python backend/app.py` (the embedded defaults) REPEAT times each way, in turn: with an empty
MODEL_CACHE_DIR (the process compiles the model, as the first start does) and with one an earlier start
filled (it loads the compiled pass). Times each from the process's start to its first answer on /health,
and reads its resident memory then. Prints the medians and their ratio; asserts nothing.
    python -m bench.bench_start [--repeat 5]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tests.fixtures.server import started_server


def start(cache_dir: Path, data_dir: Path) -> tuple[float, int]:
    """Seconds from the process's start to /health answering, and its resident memory (MiB) then."""
    began = time.perf_counter()
    with started_server({"DATA_DIR": str(data_dir), "MODEL_CACHE_DIR": str(cache_dir)}) as server:
        seconds = time.perf_counter() - began
        status = Path(f"/proc/{server.process.pid}/status").read_text()
        rss_mib = int(status.split("VmRSS:")[1].split()[0]) // 1024
    return seconds, rss_mib


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        kept = root / "kept"
        start(kept, root / "data")  # fills it
        runs = {"compiles": [], "loads": []}
        for n in range(args.repeat):
            runs["compiles"].append(start(root / f"empty-{n}", root / "data"))
            runs["loads"].append(start(kept, root / "data"))
    medians = {way: (statistics.median(s for s, _ in r), statistics.median(m for _, m in r)) for way, r in runs.items()}
    for way, (seconds, rss) in medians.items():
        print(f"start to /health, {way} the model: {seconds:.2f} s median of {args.repeat}, {rss} MiB resident")
    print(
        f"ratio (loads / compiles): time {medians['loads'][0] / medians['compiles'][0]:.2f}x, "
        f"memory {medians['loads'][1] / medians['compiles'][1]:.2f}x"
    )


if __name__ == "__main__":
    main()
