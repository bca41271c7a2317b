"""Serving: load the weights once per process, then calibrated probabilities, the thresholded label,
the input check and a CAM, all from one forward pass (the input check branches off its first layers),
and whether the slice could be judged at all."""

import functools
import os
from dataclasses import dataclass

import numpy as np
import torch
from flask import current_app

from backend.ml.compiled import cached, compiled, digest
from backend.ml.inputcheck import InputCheck
from backend.ml.network import ARCHITECTURES, Ensemble, fold_batchnorm, members_of
from backend.ml.preprocess import LABELS, V3, cam_to_slice, to_input

# why a slice is not assessable
NOT_CHEST_CT, NO_LUNG_FIELD, LOW_RESOLUTION = "not_chest_ct", "no_lung_field", "low_resolution"
# px: a lung field narrower than this (the crop's shorter side) is too coarse to judge. Below it the typical real
# slice's P(COVID) is further from its full-resolution answer than re-framing may move one slice (0.10):
# measured by backend.ml.resolution (weights/resolution.json's floor).
MIN_LUNG_SIDE = 80


@dataclass
class Prediction:
    label: str  # LABELS[0] (COVID) when its probability reaches `threshold`, else LABELS[1]
    probabilities: dict  # label -> calibrated probability; they sum to 1
    threshold: float  # the operating point on probabilities[LABELS[0]]
    in_distribution: bool  # whether the slice looks like the training slices (axial chest CT)
    distribution_score: float  # share of held-out real CT slices further from the training data (0..1)
    cam: np.ndarray  # raw class activation map of `label`, (h, w) float32, in the whole slice's frame
    # None when the slice was judged; else why not: NOT_CHEST_CT (the input check flags it), NO_LUNG_FIELD
    # (too little lung: above the apices, below the bases, a sliver) or LOW_RESOLUTION (the lungs too few pixels
    # across: a thumbnail). `label` is still given for compatibility.
    reason: str | None = None
    lung_share: float = 0.0  # the lungs' area over the thorax's (imaging.lungfield): how much lung the slice shows
    crop_side: int = 0  # the shorter side of the crop the network judged, in the slice's pixels

    @property
    def assessable(self) -> bool:
        return self.reason is None

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]

    def as_json(self) -> dict:
        """The response's and stored document's `prediction` field."""
        return {
            "label": self.label,
            "confidence": self.confidence,
            "probabilities": self.probabilities,
            "threshold": self.threshold,
            "in_distribution": self.in_distribution,
            "distribution_score": self.distribution_score,
            "assessable": self.assessable,
            "reason": self.reason,
        }


class Classifier:
    def __init__(
        self,
        network,
        name,
        version,
        labels=LABELS,
        temperature=1.0,
        threshold=0.5,
        input_check=None,
        preprocessing=None,
        compile_pass=compiled,
    ):
        self.network = network.eval()
        self.members = members_of(self.network)
        self.name, self.version, self.labels = name, version, tuple(labels)
        self.temperature, self.threshold, self.input_check = float(temperature), float(threshold), input_check
        self.preprocessing = dict(preprocessing or V3)  # preprocess.to_input's options the weights were trained with
        self.forward_pass = compile_pass(ForwardPass(self.members, input_check))

    @classmethod
    def load(cls, path, cache_dir=None):
        """The classifier of a weights file; with `cache_dir`, its compiled pass is kept there for the next process."""
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        build = functools.partial(ARCHITECTURES[checkpoint["arch"]], **checkpoint.get("config", {}))
        members = checkpoint.get("members", 1)
        network = Ensemble([build() for _ in range(members)]) if members > 1 else build()
        network.load_state_dict(
            {
                key: value.float() if value.is_floating_point() else value  # ensembles: stored in half
                for key, value in checkpoint["state_dict"].items()
            }
        )
        # Channels-last suits the depthwise convolutions on CPU: about 20% faster for one slice, 1.8x for batches.
        network = fold_batchnorm(network.eval()).to(memory_format=torch.channels_last)
        check = InputCheck.from_state(checkpoint["input_check"]) if "input_check" in checkpoint else None
        return cls(
            network,
            checkpoint["name"],
            checkpoint["version"],
            checkpoint.get("labels", LABELS),
            checkpoint.get("temperature", 1.0),
            checkpoint.get("threshold", 0.5),
            check,
            checkpoint.get("preprocessing", {"crop": "body", "intensity": "raw"}),  # before 3.0.0: none stored
            functools.partial(cached, folder=cache_dir, name=digest(path)) if cache_dir else compiled,
        )

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated class probabilities: softmax of the logits divided by the fitted temperature."""
        return torch.softmax(logits.double() / self.temperature, dim=-1)

    def predict(self, gray: np.ndarray) -> Prediction:
        return self.predict_batch([gray])[0]

    @torch.inference_mode()
    def predict_batch(self, grays: list[np.ndarray]) -> list[Prediction]:
        """One forward pass for several slices (the batch command); each answered as if alone."""
        inputs = [to_input(gray, **self.preprocessing) for gray in grays]
        logits, features, embeddings = self.forward_pass(torch.stack([prepared.input for prepared in inputs]))
        predictions = []
        for row, (gray, prepared) in enumerate(zip(grays, inputs, strict=False)):
            top, bottom, left, right = prepared.box
            side = min(bottom - top, right - left)
            probs = self.probabilities(logits[row]).tolist()
            index = 0 if probs[0] >= self.threshold else 1
            cam = (
                torch.stack([member.cam(features[row : row + 1, m], index) for m, member in enumerate(self.members)])
                .mean(0)[0]
                .float()
                .numpy()
            )
            in_distribution, score = self.input_check(embeddings[row]) if self.input_check else (True, 1.0)
            predictions.append(
                Prediction(
                    self.labels[index],
                    dict(zip(self.labels, probs, strict=False)),
                    self.threshold,
                    in_distribution,
                    score,
                    cam_to_slice(cam, prepared.box, gray.shape),
                    not_assessable_reason(in_distribution, prepared.field, side),
                    prepared.field.share,
                    side,
                )
            )
        return predictions


def not_assessable_reason(in_distribution: bool, field, crop_side: int) -> str | None:
    """Why a slice is not judged: not chest CT at all comes first, then too little lung (its lung field's rule),
    then lungs too few pixels across."""
    if not in_distribution:
        return NOT_CHEST_CT
    if not field.assessable:
        return NO_LUNG_FIELD
    return None if crop_side >= MIN_LUNG_SIDE else LOW_RESOLUTION


class ForwardPass(torch.nn.Module):
    """The members' pass and the input check's branch, as one module: (mean logits, each member's last feature
    maps (N, members, C, h, w), input check embeddings or None). The first `tap` layers, which the members and
    the input check share (frozen ImageNet layers), run once."""

    def __init__(self, members, input_check=None):
        super().__init__()
        tap = input_check.tap if input_check else 0
        self.head = members[0].features[:tap]
        self.tails = torch.nn.ModuleList([member.features[tap:] for member in members])
        self.fcs = torch.nn.ModuleList([member.fc for member in members])
        self.probe = input_check.probe if input_check else None

    def forward(self, x):
        tapped = self.head(x)
        logits, features = [], []
        for tail, fc in zip(self.tails, self.fcs, strict=False):
            maps = tail(tapped)
            features.append(maps)
            logits.append(fc(maps.mean(dim=(2, 3))))  # the network's embed; eval: no dropout
        mean_logits, features = torch.stack(logits).mean(0), torch.stack(features, 1)
        if self.probe is None:
            return mean_logits, features, None
        return mean_logits, features, self.probe(tapped).mean(dim=(2, 3))  # the input check's pooled embedding


@functools.cache
def _shared(path: str, modified_ns: int, cache_dir: str) -> Classifier:
    return Classifier.load(path, cache_dir)


def init_app(app):
    """One classifier per weights file and process: apps built in one process (tests) share it."""
    if app.config["TORCH_THREADS"]:
        torch.set_num_threads(app.config["TORCH_THREADS"])
    path = app.config["MODEL_PATH"]
    app.extensions["classifier"] = _shared(path, os.stat(path).st_mtime_ns, model_cache_dir(app.config))


def model_cache_dir(config) -> str:
    return config["MODEL_CACHE_DIR"] or os.path.join(config["DATA_DIR"], "model-cache")


def get_classifier() -> Classifier:
    return current_app.extensions["classifier"]
