"""Time one 512x512 slice: plain forward vs forward + CAM (what the service does) vs Grad-CAM (forward + backward).

    python bench/bench_cam.py [--weights PATH] [--repeats 50] [--threads 2]

Prints median milliseconds and ratios against the plain forward pass; no assertions.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.timing import median_ms  # noqa: E402
from backend.config import DEFAULT_MODEL_PATH  # noqa: E402
from backend.ml.classifier import Classifier  # noqa: E402
from backend.ml.gradcam import grad_cam  # noqa: E402
from backend.ml.preprocess import to_input  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    classifier = Classifier.load(args.weights)
    network = classifier.network
    gray = np.random.default_rng(0).integers(0, 256, (512, 512), dtype=np.uint8)

    def plain():
        with torch.inference_mode():
            network(to_input(gray).unsqueeze(0))

    def gradcam():
        x = to_input(gray).unsqueeze(0)
        with torch.inference_mode():
            index = int(network(x).argmax())  # Grad-CAM needs the class first, then a pass with gradients
        grad_cam(network, x, index)

    def gradcam_one_pass():
        grad_cam(network, to_input(gray).unsqueeze(0), 0)

    rows = [("plain forward (inference_mode)", median_ms(plain, args.repeats)),
            ("forward + CAM: Classifier.predict", median_ms(lambda: classifier.predict(gray), args.repeats)),
            ("Grad-CAM: forward + backward", median_ms(gradcam_one_pass, args.repeats)),
            ("Grad-CAM: predict, then forward + backward", median_ms(gradcam, args.repeats))]
    print(f"{classifier.name} {classifier.version}, 512x512 slice, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    base = rows[0][1]
    for name, ms in rows:
        print(f"  {name:<44} {ms:8.2f} ms  x{ms / base:.2f}")


if __name__ == "__main__":
    main()
