"""Is this a chest CT slice at all? Distance of the slice's ImageNet features to the training slices'.

The features are EfficientNet-Lite0's ImageNet features through stage 5 (`features[:PROBE_END]`),
pooled. The served network shares its first layers with them (the frozen ones, through `tap`), so
the check runs only ImageNet's stage 5 on top: about a tenth of a forward pass. Not the classifier's
own fine-tuned embedding: fine-tuning on 517 CT slices pulls photos, MR and radiographs towards
the CT slices there (40 % of the non-CT set flagged for 2.1.0), while ImageNet's features keep
them apart. The distance to the k-th nearest training slice (cosine geometry: L2-normalised
vectors) is small for slices like the training data and large for other pictures (Sun et al.,
"Out-of-distribution detection with deep nearest neighbors", ICML 2022). The limit is a high
percentile of held-out CT slices' distances: each slice against the slices of the other folds.
"""

import numpy as np
import torch

from backend.ml.network import EfficientNetLite0, fold_batchnorm

K = 5
PERCENTILE = 99.0  # of the held-out CT distances: about 1 % of real CT slices are flagged
PROBE_END = 12  # ImageNet Lite0 features[:12]: stem and stages 1-5 (112 channels, 14x14 at 224 px)


def _normalised(embeddings):
    return torch.nn.functional.normalize(torch.as_tensor(embeddings, dtype=torch.float32), dim=1)


def knn_distances(reference, embeddings, k=K):
    """Distance of each embedding (N, C) to its k-th nearest reference embedding (M, C), both L2-normalised first."""
    similarity = _normalised(embeddings) @ _normalised(reference).T
    kth = similarity.topk(min(k, similarity.shape[1]), dim=1).values[:, -1]
    return torch.sqrt(torch.clamp(2 - 2 * kth, min=0)).numpy().astype(float)


class InputCheck:
    def __init__(self, probe, tap, reference, limit, held_out_distances):
        self.probe = probe.eval()  # ImageNet layers features[tap:PROBE_END], run on the network's features[:tap] output
        self.tap = int(tap)
        self.reference = _normalised(reference)  # (M, C): the training slices' embeddings
        self.limit = float(limit)
        self.held_out = np.sort(np.asarray(held_out_distances, dtype=float))  # held-out CT distances

    @classmethod
    def fit(cls, imagenet, tap, inputs, folds):
        """From ImageNet Lite0's `features` (the served network's first `tap` layers are the same), the training
        slices' scaled inputs (N, 1, H, W) and their folds: every slice is the reference, the limit is the
        PERCENTILE of each slice's distance to the slices of the other folds."""
        with torch.inference_mode():
            embeddings = torch.cat([imagenet[:PROBE_END](chunk).mean(dim=(2, 3)) for chunk in inputs.split(64)])
        held_out = np.zeros(len(embeddings))
        for fold in np.unique(folds):
            inside = torch.from_numpy(folds == fold)
            held_out[inside.numpy()] = knn_distances(embeddings[~inside], embeddings[inside])
        return cls(imagenet[tap:PROBE_END], tap, embeddings, np.percentile(held_out, PERCENTILE), held_out)

    def __call__(self, embedding):
        """(in_distribution, distribution_score) of one embedding (C,).

        distribution_score: the share of held-out real CT slices at least as far from the training
        slices as this input (1: closer than all of them; 0: further than every one).
        """
        distance = knn_distances(self.reference, embedding[None])[0]
        share = 1.0 - np.searchsorted(self.held_out, distance, side="left") / len(self.held_out)
        return bool(distance <= self.limit), float(share)

    def state(self):
        return {
            "probe": self.probe.state_dict(),
            "tap": self.tap,
            "reference": self.reference.half(),
            "limit": self.limit,
            "held_out": torch.from_numpy(self.held_out),
        }

    @classmethod
    def from_state(cls, state):
        """For serving: the probe's BatchNorm folded into its convolutions, channels-last as the network."""
        probe = EfficientNetLite0().features[state["tap"] : PROBE_END]
        probe.load_state_dict(state["probe"])
        probe = fold_batchnorm(probe.eval()).to(memory_format=torch.channels_last)
        return cls(probe, state["tap"], state["reference"].float(), state["limit"], state["held_out"].numpy())
