"""Time everything the model does for one 512x512 slice, against the 1.x network in the same run.

    python -m bench.bench_cam [--weights PATH] [--repeats 50] [--threads 2]

The slice is a real chest CT slice through the lung window (the middle of ../shared/data/ct-series, when
present; else random noise). Rows: the lung field alone (`lungfield.find`: masks, box, assessability,
intensity anchors); one network's plain forward pass (for an ensemble: one member's); `Classifier.predict`
(lung field, crop and standardised intensity, forward of every member, calibrated probabilities,
thresholded label, CAM mapped into the slice's frame, input check, assessability); one network's
Grad-CAM (forward + backward) for comparison; and the same `predict` with the 1.x CTNet architecture
(random weights: speed does not depend on them). Median milliseconds and ratios against the 1.x
`predict`; no assertions.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from backend.config import DEFAULT_MODEL_PATH
from backend.imaging import lungfield
from backend.imaging.decode import decode_image
from backend.ml.classifier import Classifier
from backend.ml.gradcam import grad_cam
from backend.ml.network import CTNet
from backend.ml.preprocess import to_input
from bench.timing import median_ms

SERIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct-series" / "lung-pet-ct-dx-a0002"


def real_slice():
    """(a 512x512 uint8 slice, what it is): a real one when ../shared is there."""
    if (SERIES / "1-15.dcm").is_file():
        return decode_image((SERIES / "1-15.dcm").read_bytes()), "real chest CT slice (ct-series 1-15.dcm, lung window)"
    return np.random.default_rng(0).integers(0, 256, (512, 512), dtype=np.uint8), "random noise"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    classifier = Classifier.load(args.weights)
    baseline = Classifier(CTNet(), "ctnet-covid", "1.x architecture")
    network = classifier.members[0]
    gray, what = real_slice()

    def plain():
        with torch.inference_mode():
            network(to_input(gray, **classifier.preprocessing).input.unsqueeze(0))

    def gradcam():
        x = to_input(gray, **classifier.preprocessing).input.unsqueeze(0)
        with torch.inference_mode():
            index = int(network(x).argmax())  # Grad-CAM needs the class first, then a pass with gradients
        grad_cam(network, x, index)

    rows = [
        ("1.x CTNet: Classifier.predict (baseline)", median_ms(lambda: baseline.predict(gray), args.repeats)),
        ("lung field alone (lungfield.find)", median_ms(lambda: lungfield.find(gray), args.repeats)),
        ("one network: plain forward (inference_mode)", median_ms(plain, args.repeats)),
        ("Classifier.predict: everything served", median_ms(lambda: classifier.predict(gray), args.repeats)),
        ("one network: Grad-CAM, forward + backward", median_ms(gradcam, args.repeats)),
    ]
    print(
        f"{classifier.name} {classifier.version} ({len(classifier.members)} network(s)), {what}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}"
    )
    base = rows[0][1]
    for name, ms in rows:
        print(f"  {name:<44} {ms:8.2f} ms  x{ms / base:.2f}")


if __name__ == "__main__":
    main()
