"""A small residual CNN that ends in global average pooling and one linear layer.

That ending makes the class activation map (the class's linear weights applied to the last
feature maps) available from the same forward pass, and equal to Grad-CAM up to scale.
The last stage keeps stride 1, so a 224 px input gives 14x14 maps: finer heatmaps than 7x7.
"""
import torch
from torch import nn


class _Residual(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a (projected) shortcut: trains well from scratch."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


class CTNet(nn.Module):
    def __init__(self, widths=(24, 32, 64, 128, 192), strides=(2, 2, 2, 2, 1), num_classes=2, dropout=0.3):
        super().__init__()
        stem, *stages = widths
        layers = [nn.Conv2d(1, stem, 3, strides[0], 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True)]
        c_in = stem
        for width, stride in zip(stages, strides[1:]):
            layers.append(_Residual(c_in, width, stride))
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
        """Class activation maps (N, h, w) of one class from the last feature maps.

        The class logit is the spatial mean of this map plus the bias (dropout is off in eval).
        """
        weights = self.fc.weight[class_index]  # (C,)
        return torch.einsum("c,nchw->nhw", weights, features)
