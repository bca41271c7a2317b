"""Is this a chest CT slice at all? Distance of the model's own embedding to the training slices' embeddings.

The embedding is the pooled feature vector the linear layer reads. Its distance to the k-th
nearest training slice (cosine geometry: L2-normalised vectors) is small for slices like the
training data and large for photos, X-rays, MR and the like (Sun et al., "Out-of-distribution
detection with deep nearest neighbors", ICML 2022). The limit is a high percentile of the
distances of held-out CT slices in cross-validation, so it is set by slices the network never saw.
"""
import numpy as np
import torch

K = 5
PERCENTILE = 99.0  # of the out-of-fold CT distances: about 1 % of real CT slices are flagged


def _normalised(embeddings):
    return torch.nn.functional.normalize(torch.as_tensor(embeddings, dtype=torch.float32), dim=1)


def knn_distances(reference, embeddings, k=K):
    """Distance of each embedding (N, C) to its k-th nearest reference embedding (M, C), both L2-normalised first."""
    similarity = _normalised(embeddings) @ _normalised(reference).T
    kth = similarity.topk(min(k, similarity.shape[1]), dim=1).values[:, -1]
    return torch.sqrt(torch.clamp(2 - 2 * kth, min=0)).numpy().astype(float)


class InputCheck:
    def __init__(self, reference, limit, held_out_distances):
        self.reference = _normalised(reference)  # (M, C): the training slices' embeddings
        self.limit = float(limit)
        self.held_out = np.sort(np.asarray(held_out_distances, dtype=float))  # out-of-fold CT distances

    @classmethod
    def fit(cls, train_embeddings, held_out_distances):
        """The reference is every training slice; the limit the PERCENTILE of the out-of-fold CT distances."""
        return cls(train_embeddings, np.percentile(held_out_distances, PERCENTILE), held_out_distances)

    def __call__(self, embedding):
        """(in_distribution, distribution_score) of one embedding (C,).

        distribution_score: the share of held-out real CT slices at least as far from the training
        slices as this input (1: closer than all of them; 0: further than every one).
        """
        distance = knn_distances(self.reference, embedding[None])[0]
        share = 1.0 - np.searchsorted(self.held_out, distance, side="left") / len(self.held_out)
        return bool(distance <= self.limit), float(share)

    def state(self):
        return {"reference": self.reference.half(), "limit": self.limit,
                "held_out": torch.from_numpy(self.held_out)}

    @classmethod
    def from_state(cls, state):
        return cls(state["reference"].float(), state["limit"], state["held_out"].numpy())
