"""Reference Grad-CAM with autograd (a second, backward pass): what the served CAM is checked and timed against."""

import torch


def grad_cam(network, x, class_index):
    """Grad-CAM before its ReLU, (N, h, w): feature maps weighted by spatially averaged gradients of the class logit."""
    with torch.enable_grad():
        logits, features = network.forward_with_features(x)
        (gradients,) = torch.autograd.grad(logits[:, class_index].sum(), features)
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    return (weights * features).sum(dim=1).detach()
