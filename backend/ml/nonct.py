"""Images that are not chest CT, for measuring the input check: package-shipped files and generated pictures.

scikit-image's sample pictures (photos, microscopy, text, a head phantom), pydicom's and
pydicom-data's MR, ultrasound, radiograph (CR) and nuclear-medicine test files, and a few
generated images. All as file bytes, so they go through the service's own decoder. Training and
tests only (scikit-image, pydicom-data: dev dependencies).
"""
from pathlib import Path

import cv2
import numpy as np

from backend.errors import InvalidInput
from backend.imaging.decode import decode_image

SKIMAGE_FILES = ("astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "chessboard_GRAY.png",
                 "clock_motion.png", "coffee.png", "coins.png", "color.png", "grass.png", "gravel.png", "horse.png",
                 "hubble_deep_field.jpg", "ihc.png", "logo.png", "microaneurysms.png", "moon.png",
                 "motorcycle_left.png", "page.png", "phantom.png", "retina.jpg", "rocket.jpg", "text.png")
# One file per distinct picture (the test suites hold many encodings of the same few).
DICOM_FILES = ("MR_small.dcm", "emri_small.dcm", "MR2_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm",
               "examples_overlay.dcm", "US1_UNCR.dcm", "examples_rgb_color.dcm", "examples_palette.dcm",
               "OBXXXX1A.dcm", "gdcm-US-ALOKA-16.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "color-px.dcm",
               "RG1_UNCR.dcm", "RG3_UNCR.dcm", "JPEG2000_UNC.dcm")


def _dicom_roots():
    import pydicom

    roots = [Path(pydicom.__file__).parent / "data" / "test_files"]
    try:
        import data_store  # pydicom-data

        roots.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    return roots


def generated():
    """{name: PNG bytes} of simple synthetic pictures: noise, a gradient, blobs, a checkerboard, text, flat gray."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:384, 0:512]
    pictures = {
        "noise": rng.integers(0, 256, (384, 512)),
        "gradient": xx / 511 * 255,
        "blobs": sum(200 * np.exp(-((yy - rng.uniform(0, 384)) ** 2 + (xx - rng.uniform(0, 512)) ** 2) / 2000.0)
                     for _ in range(12)),
        "checkerboard": ((yy // 32 + xx // 32) % 2) * 255,
        "flat": np.full((384, 512), 128),
    }
    text = np.full((384, 512), 255, np.uint8)
    for row in range(6):
        cv2.putText(text, "Lorem ipsum dolor sit", (10, 50 + 60 * row), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 0, 2)
    pictures["text"] = text
    return {name: cv2.imencode(".png", np.clip(p, 0, 255).astype(np.uint8))[1].tobytes()
            for name, p in pictures.items()}


def images():
    """{name: file bytes} of every non-CT image; names say where each came from."""
    import skimage

    out = {}
    data_dir = Path(skimage.__file__).parent / "data"
    for name in SKIMAGE_FILES:
        out[f"scikit-image/{name}"] = (data_dir / name).read_bytes()
    roots = _dicom_roots()
    for name in DICOM_FILES:
        path = next(root / name for root in roots if (root / name).is_file())
        out[f"pydicom/{name}"] = path.read_bytes()
    out.update({f"generated/{name}": data for name, data in generated().items()})
    return out


def screen(classifier, data: bytes) -> tuple[bool, float]:
    """(in_distribution, distribution_score) the service gives an image; one its decoder refuses
    outright (a blank picture) never reaches the model, so it counts as caught: (False, 0.0)."""
    try:
        prediction = classifier.predict(decode_image(data))
    except InvalidInput:
        return False, 0.0
    return prediction.in_distribution, prediction.distribution_score
