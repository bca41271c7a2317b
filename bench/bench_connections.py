"""How long /health and a normal POST /analyze take while many connections are held open.

Starts `python backend/app.py`, times both requests with no other connection (the baseline),
then again with IDLE idle sockets and TRICKLE sockets sending a header byte every half second,
and prints the medians and their ratios to the baseline; asserts nothing. Loopback only,
bounded in connections and time.
    python -m bench.bench_connections [--idle 200] [--trickle 50] [--repeat 10]
"""
import argparse
import contextlib
import socket
import statistics
import tempfile
import threading
import time
from urllib.parse import urlsplit

from tests.fixtures.data import dicom_file
from tests.fixtures.http import multipart, request
from tests.fixtures.server import running_server

TRICKLE_INTERVAL_S = 0.5

# Benchmarks measure the service, not the per-owner rate limit (RATE_LIMIT).
UNLIMITED = "1000000/minute"


@contextlib.contextmanager
def held_connections(base_url, idle, trickle):
    """Open `idle` silent sockets and `trickle` sockets that send a header byte every half second."""
    host, port = urlsplit(base_url).hostname, urlsplit(base_url).port
    sockets = [socket.create_connection((host, port), timeout=5) for _ in range(idle + trickle)]
    stop = threading.Event()

    def trickle_bytes():
        payload = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
        for i in range(len(payload)):
            if stop.wait(TRICKLE_INTERVAL_S):
                return
            for sock in sockets[idle:]:
                with contextlib.suppress(OSError):  # the server may close a trickler: that is its defence
                    sock.send(payload[i:i + 1])

    sender = threading.Thread(target=trickle_bytes, daemon=True)
    sender.start()
    try:
        yield
    finally:
        stop.set()
        sender.join()
        for sock in sockets:
            sock.close()


def timed_ms(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        status = fn()
        times.append(1000 * (time.perf_counter() - start))
        assert status in (200, 201), status
    return statistics.median(times), max(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--trickle", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()

    body, headers = multipart("file", "693_UNCR.dcm", dicom_file("693_UNCR.dcm").read_bytes())
    settings = {"RATE_LIMIT": UNLIMITED}
    with tempfile.TemporaryDirectory() as tmp, running_server({**settings, "DATA_DIR": tmp}) as base_url:
        health = lambda: request("GET", base_url + "/health")[0]  # noqa: E731
        analyze = lambda: request("POST", base_url + "/analyze", body, headers)[0]  # noqa: E731
        timed_ms(analyze, 2)  # warm-up
        base_health, base_analyze = timed_ms(health, args.repeat), timed_ms(analyze, args.repeat)
        with held_connections(base_url, args.idle, args.trickle):
            time.sleep(2)  # let the tricklers start
            loaded_health, loaded_analyze = timed_ms(health, args.repeat), timed_ms(analyze, args.repeat)

    print(f"with {args.idle} idle and {args.trickle} trickling connections held open (median / max ms):")
    for name, base, loaded in (("GET /health", base_health, loaded_health),
                               ("POST /analyze", base_analyze, loaded_analyze)):
        print(f"  {name:14} {loaded[0]:8.1f} / {loaded[1]:8.1f}   alone {base[0]:8.1f} / {base[1]:8.1f}"
              f"   ratio {loaded[0] / base[0]:.2f}x")


if __name__ == "__main__":
    main()
