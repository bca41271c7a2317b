"""A small CNN that ends in global average pooling and one linear layer.

That ending makes the class activation map (the class's linear weights applied to the last
feature maps) available from the same forward pass, and equal to Grad-CAM up to scale.
"""
import torch
from torch import nn


def _block(c_in, c_out, stride):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class CTNet(nn.Module):
    def __init__(self, widths=(24, 48, 96, 192), num_classes=2, dropout=0.3):
        super().__init__()
        layers, c_in = [], 1
        for width in widths:
            layers.append(_block(c_in, width, 2))
            c_in = width
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c_in, num_classes)

    def forward_with_features(self, x):
        """(logits, last feature maps) from one pass."""
        features = self.features(x)
        logits = self.fc(self.dropout(features.mean(dim=(2, 3))))
        return logits, features

    def forward(self, x):
        return self.forward_with_features(x)[0]

    def cam(self, features, class_index):
        """Class activation maps (N, h, w) of one class from the last feature maps."""
        weights = self.fc.weight[class_index]  # (C,)
        return torch.einsum("c,nchw->nhw", weights, features)
