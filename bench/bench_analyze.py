"""Benchmark POST /analyze against the bare model forward pass, and draft-mode JPEG decoding.

Prints figures and ratios measured in this one run; asserts nothing.
    python -m bench.bench_analyze [--repeat 30]
"""
import argparse
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from backend.app import create_app
from backend.imaging.decode import decode_image
from backend.ml.classifier import get_classifier
from bench.timing import median_ms
from tests.fixtures.data import dicom_file


def peak_rss_mb(code):
    """Peak resident memory of a fresh interpreter running `code` (MiB)."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (large) parent across fork+exec.
    probe = "\nprint(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"
    out = subprocess.run([sys.executable, "-c", code + probe], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return int(out.stdout.split()[-1]) / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    data = dicom_file("693_UNCR.dcm").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"DATA_DIR": tmp})
        client = app.test_client()
        with app.app_context():
            gray = decode_image(data)
            forward = median_ms(lambda: get_classifier().predict(gray), args.repeat, warmup=1)
        request = median_ms(lambda: client.post("/analyze", data={"file": (io.BytesIO(data), "s.dcm")}), args.repeat, warmup=1)
    print(f"512x512 CT DICOM, median of {args.repeat}:")
    print(f"  model forward + CAM (baseline)   {forward:8.1f} ms")
    print(f"  whole POST /analyze              {request:8.1f} ms   ({request / forward:.1f}x the forward pass)")

    photo = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), np.uint8)).save(photo, "JPEG", quality=85)
    photo = photo.getvalue()
    full = median_ms(lambda: np.asarray(Image.open(io.BytesIO(photo)).convert("L")), 5, warmup=1)
    draft = median_ms(lambda: decode_image(photo), 5, warmup=1)
    with tempfile.NamedTemporaryFile(suffix=".jpg") as f:
        f.write(photo)
        f.flush()
        base = peak_rss_mb("import numpy, PIL.Image, backend.imaging.decode")
        full_rss = peak_rss_mb(f"import numpy, PIL.Image, backend.imaging.decode\n"
                               f"numpy.asarray(PIL.Image.open('{f.name}').convert('L'))")
        draft_rss = peak_rss_mb(f"import numpy, PIL.Image, backend.imaging.decode\n"
                                f"backend.imaging.decode.decode_image(open('{f.name}','rb').read())")
    print("4000x3000 JPEG photo:")
    print(f"  full decode (baseline)           {full:8.1f} ms   {full_rss - base:6.1f} MiB above imports")
    print(f"  draft-mode decode (service)      {draft:8.1f} ms   {draft_rss - base:6.1f} MiB above imports"
          f"   ({draft / full:.2f}x time, {(draft_rss - base) / max(full_rss - base, 0.1):.2f}x memory)")


if __name__ == "__main__":
    main()
