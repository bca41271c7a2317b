"""Serving: load the weights once per process, then probabilities and a CAM from one forward pass."""
from dataclasses import dataclass

import numpy as np
import torch
from flask import current_app

from backend.ml.network import CTNet
from backend.ml.preprocess import LABELS, to_input


@dataclass
class Prediction:
    label: str
    probabilities: dict  # label -> probability; they sum to 1
    cam: np.ndarray  # raw class activation map of `label`, (h, w) float32, covering the whole slice

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]

    def as_json(self) -> dict:
        """The response's and stored document's `prediction` field."""
        return {"label": self.label, "confidence": self.confidence, "probabilities": self.probabilities}


class Classifier:
    def __init__(self, network: CTNet, name: str, version: str, labels=LABELS):
        self.network = network.eval()
        self.name, self.version, self.labels = name, version, tuple(labels)

    @classmethod
    def load(cls, path):
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        network = CTNet(**checkpoint.get("config", {}))
        network.load_state_dict(checkpoint["state_dict"])
        return cls(network, checkpoint["name"], checkpoint["version"], checkpoint.get("labels", LABELS))

    def predict(self, gray: np.ndarray) -> Prediction:
        return self.predict_batch([gray])[0]

    @torch.inference_mode()
    def predict_batch(self, grays: list[np.ndarray]) -> list[Prediction]:
        """One forward pass for several slices (the batch command); each answered as `predict` would."""
        logits, features = self.network.forward_with_features(torch.stack([to_input(gray) for gray in grays]))
        predictions = []
        for row, probs in enumerate(torch.softmax(logits.double(), dim=1).tolist()):
            index = int(np.argmax(probs))
            cam = self.network.cam(features[row:row + 1], index)[0].float().numpy()
            predictions.append(Prediction(self.labels[index], dict(zip(self.labels, probs)), cam))
        return predictions

def init_app(app):
    if app.config["TORCH_THREADS"]:
        torch.set_num_threads(app.config["TORCH_THREADS"])
    app.extensions["classifier"] = Classifier.load(app.config["MODEL_PATH"])


def get_classifier() -> Classifier:
    return current_app.extensions["classifier"]
