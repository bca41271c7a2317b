"""One slice through the service: decode, model, images, findings. No request, no store.

The API route and the batch command both call `analyze_slice`; what they do around it
(authentication, idempotency, storing, writing files) is their own.
"""
from dataclasses import dataclass

import numpy as np
from PIL import Image

from backend import metrics
from backend.background import POOL
from backend.analysis.findings import describe
from backend.errors import InvalidInput
from backend.imaging import anatomy, heatmap
from backend.imaging.limits import Limits
from backend.ml.classifier import Classifier, Prediction
from backend.utils.helpers import create_thumbnail, download_image, fit_to_box, full_size_jpeg, to_data_url


@dataclass
class SliceAnalysis:
    prediction: Prediction
    findings: list[str]
    recommendations: list[str]
    slice_400: Image.Image  # the slice as the model saw it, longer side 400 px
    overlay_400: np.ndarray  # the heatmap blended over it, same size (RGB uint8)
    images: dict  # file_url, heatmap_url (400 px data URLs) and their 200 px thumbnails
    jpegs: dict  # slice.jpg, heatmap.jpg: the JPEG bytes of file_url and heatmap_url, kept as objects


def analyze_slice(source, classifier: Classifier, window="lung", frame=None, limits=Limits()) -> SliceAnalysis:
    """Bytes (or a data URL / base64 text) of one slice -> the prediction, findings and images.

    The slice's own pictures and masks need no prediction: they are made on another core while
    the model runs (one request on an idle machine answers about 4 ms sooner; under load it costs nothing).
    """
    with metrics.stage("decode"):
        gray = download_image(source, window=window, frame=frame, limits=limits)
    pictures = POOL.submit(slice_pictures, gray)
    with metrics.stage("model"):
        prediction = classifier.predict(gray)
    return describe_slice(gray, prediction, pictures.result())


def predict_slices(sources: list, classifier: Classifier, window="lung", limits=Limits()) -> list:
    """Several slices decoded, then one forward pass for all: per source (gray, Prediction), or the
    InvalidInput that rejected it. `describe_slice` turns a (gray, Prediction) into what analyze_slice gives.
    """
    decoded = {}
    answers = [None] * len(sources)
    for index, source in enumerate(sources):
        try:
            with metrics.stage("decode"):
                decoded[index] = download_image(source, window=window, limits=limits)
        except InvalidInput as exc:
            answers[index] = exc
    if decoded:
        with metrics.stage("model"):
            predictions = classifier.predict_batch(list(decoded.values()))
        for (index, gray), prediction in zip(decoded.items(), predictions):
            answers[index] = (gray, prediction)
    return answers


@dataclass
class SlicePictures:
    """What is drawn from the slice alone: the 400 px slice, its JPEG and thumbnail, its body and lung masks."""
    slice_400: Image.Image
    body: np.ndarray
    lungs: np.ndarray
    file_jpeg: bytes
    file_thumbnail: str


def slice_pictures(gray: np.ndarray) -> SlicePictures:
    slice_400 = fit_to_box(gray, (400, 400))
    pixels = np.asarray(slice_400)
    body = anatomy.body_mask(pixels)
    return SlicePictures(slice_400, body, anatomy.lung_mask(pixels, body), full_size_jpeg(slice_400),
                         create_thumbnail(slice_400))


def describe_slice(gray: np.ndarray, prediction: Prediction, pictures: SlicePictures | None = None) -> SliceAnalysis:
    """The decoded slice and its prediction (and its pictures, when made already) -> images, findings and
    recommendations."""
    with metrics.stage("images"):
        pictures = pictures or slice_pictures(gray)
        pixels = np.asarray(pictures.slice_400)
        activation = heatmap.activation_map(prediction.cam, pixels.shape, pictures.body)
        overlay_400 = heatmap.overlay(pixels, activation, pictures.body)
        jpegs = {"slice.jpg": pictures.file_jpeg, "heatmap.jpg": full_size_jpeg(overlay_400)}
        images = {
            "file_url": to_data_url(jpegs["slice.jpg"]),
            "heatmap_url": to_data_url(jpegs["heatmap.jpg"]),
            "file_thumbnail": pictures.file_thumbnail,
            "heatmap_thumbnail": create_thumbnail(overlay_400),
        }
    with metrics.stage("findings"):
        findings, recommendations = describe(prediction.label, prediction.confidence, prediction.probabilities,
                                             activation, pictures.body, pictures.lungs, prediction.threshold,
                                             prediction.in_distribution, prediction.reason)
    return SliceAnalysis(prediction, findings, recommendations, pictures.slice_400, overlay_400, images, jpegs)
