"""Peak resident memory of the real service while six clients upload the largest images the limits allow.

Starts `python backend/app.py` with its defaults (MAX_UPLOAD_MB, MAX_PIXELS, DECODE_BUDGET_MB),
reads its idle memory after one warm-up analysis, then has CLIENTS threads post, in parallel and
repeatedly, the worst cases: a 4096 x 4096 RGBA PNG, a 4096 x 4096 JPEG, an uncompressed 16-bit
DICOM just under the upload limit, a deflated 4096 x 4096 16-bit DICOM (32 MiB inflated), and
a 14 MB DICOM as base64 JSON. Prints the idle baseline, the peak (VmHWM) and their ratio; asserts
nothing. The goal is a peak under 1.5 GiB.
    python -m bench.bench_memory [--clients 6] [--rounds 3]
"""
import argparse
import base64
import collections
import io
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pydicom
from PIL import Image
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from tests.fixtures.data import dicom_file
from tests.fixtures.http import multipart, request
from tests.fixtures.server import started_server

SIDE = 4096  # MAX_PIXELS' default is 4096 x 4096
GOAL_MIB = 1536

# Benchmarks measure the service, not the per-owner rate limit (RATE_LIMIT).
UNLIMITED = "1000000/minute"


def worst_case_uploads():
    """(name, body, headers) for each worst case; every one is within the service's limits."""
    ramp = np.add.outer(np.arange(SIDE), np.arange(SIDE)) % 256
    rgba = np.dstack([ramp, ramp[::-1], ramp.T, np.full_like(ramp, 255)]).astype(np.uint8)
    png = _encode(Image.fromarray(rgba, "RGBA"), "PNG", compress_level=1)
    jpeg = _encode(Image.fromarray(rgba[..., :3], "RGB"), "JPEG", quality=95)

    ds = pydicom.dcmread(dicom_file("693_UNCR.dcm"))
    rows = (19 * 2**20) // (SIDE * 2)  # 16-bit samples just under 20 MB
    tiles = np.tile(ds.pixel_array, (rows // 512 + 1, SIDE // 512))[:rows]
    ds.Rows, ds.Columns, ds.PixelData = rows, SIDE, np.ascontiguousarray(tiles).tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    big_dicom = _dicom(ds)
    inflated_rows = SIDE  # 4096 x 4096 16-bit: the most pixels allowed, 32 MiB inflated
    ds.Rows, ds.PixelData = inflated_rows, np.ascontiguousarray(
        np.tile(tiles, (inflated_rows // rows + 1, 1))[:inflated_rows]).tobytes()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    deflated = _dicom(ds)
    json_rows = (14 * 2**20) // (SIDE * 2)  # base64 of ~14 MB stays under the 20 MB body limit
    ds.Rows, ds.PixelData = json_rows, np.ascontiguousarray(tiles[:json_rows]).tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    json_dicom = base64.b64encode(_dicom(ds)).decode()

    cases = [("png", *multipart("file", "big.png", png)), ("jpeg", *multipart("file", "big.jpg", jpeg)),
             ("dicom", *multipart("file", "big.dcm", big_dicom)),
             ("deflated-dicom", *multipart("file", "deflated.dcm", deflated)),
             ("json-dicom", json.dumps({"image": json_dicom, "filename": "big.dcm"}).encode(),
              {"Content-Type": "application/json"})]
    return [(name, body, headers) for name, body, headers in cases if len(body) < 20 * 2**20]


def _encode(image, fmt, **params):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _dicom(ds):
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def memory_mib(pid, field):
    """VmRSS (now) or VmHWM (peak) of a process, in MiB."""
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith(field)).split()[1]) / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slots", default="", help="HEAVY_WORK_SLOTS for the server (default: the cores)")
    args = parser.parse_args()

    cases = worst_case_uploads()
    print(f"{len(cases)} worst cases: " + ", ".join(f"{name} {len(body) / 2**20:.1f} MB" for name, body, _ in cases))
    statuses = collections.Counter()
    settings = {"TORCH_THREADS": "", "HEAVY_WORK_SLOTS": args.slots, "RATE_LIMIT": UNLIMITED}
    with tempfile.TemporaryDirectory() as tmp, started_server({**settings, "DATA_DIR": tmp}) as server:
        base_url, pid = server.base_url, server.process.pid
        small, small_headers = multipart("file", "693_UNCR.dcm", dicom_file("693_UNCR.dcm").read_bytes())
        request("POST", base_url + "/analyze", small, small_headers)  # warm-up: the model has run once
        idle = memory_mib(pid, "VmRSS")

        def client(index):
            for round_ in range(args.rounds):
                for name, body, headers in cases[index % len(cases):] + cases[:index % len(cases)]:
                    status = request("POST", base_url + "/analyze", body, headers)[0]
                    statuses[f"{name} {status}"] += 1

        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(client, range(args.clients)))
        peak = memory_mib(pid, "VmHWM")

    print(f"answers: {dict(sorted(statuses.items()))}")
    print(f"idle (after one analysis): {idle:.0f} MiB")
    print(f"peak with {args.clients} parallel clients x {args.rounds} rounds, "
          f"HEAVY_WORK_SLOTS={args.slots or 'cores'}: {peak:.0f} MiB "
          f"= {peak / idle:.2f}x idle; goal < {GOAL_MIB} MiB: {'met' if peak < GOAL_MIB else 'NOT met'}")


if __name__ == "__main__":
    main()
