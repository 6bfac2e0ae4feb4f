"""MobileNetV2 (Sandler et al. 2018) and its SSD feature extractor, in plain torch.

:class:`MobileNetV2` is the classifier trunk (no classifier): inverted residual blocks with a
width multiplier. :class:`MobileNetV2SSDBackbone` taps it at strides 8 / 16 / 32 and adds extra
stride-2 layers (standard or depthwise-separable "lite") down to 1x1, as SSD / SSDLite do.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

# expansion t, output channels c, repeats n, first stride s  (the paper's table 2)
_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` without going more than 10% down."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1,
            act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups,
                                         bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise (stride) -> 1x1 linear project, residual when shapes agree."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn(cin, hidden, 1)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x) if self.use_residual else self.block(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 trunk. Input ``[B, in_channels, H, W]``; ``forward`` returns the stride-32 map.

    ``stage_ends[s]`` is the index in ``features`` after which the map has stride ``s``
    (the last block of that stride), used to tap intermediate maps. ``last_channels=0``
    drops the final 1x1 conv (1280 channels in the classifier).
    """

    def __init__(self, in_channels: int = 3, width_mult: float = 1.0, last_channels: int = 1280):
        super().__init__()
        cin = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [conv_bn(in_channels, cin, 3, 2)]
        stride, self.stage_ends, self.stage_channels = 2, {}, {}
        for t, c, n, s in _SETTINGS:
            cout = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
            stride *= s
            self.stage_ends[stride], self.stage_channels[stride] = len(layers) - 1, cout
        if last_channels:
            cout = make_divisible(last_channels * max(1.0, width_mult))
            layers.append(conv_bn(cin, cout, 1))
            self.stage_ends[stride], self.stage_channels[stride] = len(layers) - 1, cout
        self.features = nn.Sequential(*layers)
        self.out_channels = self.stage_channels[32]
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def extra_block(cin: int, cout: int, lite: bool) -> nn.Sequential:
    """Stride-2 extra layer: 1x1 to ``cout // 2``, then 3x3 stride 2 (depthwise + 1x1 when lite).

    No batch norm: these maps shrink to 1x1, where batch statistics of a batch of one are undefined.
    """
    mid = cout // 2
    layers: list[nn.Module] = [nn.Conv2d(cin, mid, 1), nn.ReLU6(inplace=True)]
    if lite:
        layers += [nn.Conv2d(mid, mid, 3, 2, 1, groups=mid), nn.ReLU6(inplace=True),
                   nn.Conv2d(mid, cout, 1), nn.ReLU6(inplace=True)]
    else:
        layers += [nn.Conv2d(mid, cout, 3, 2, 1), nn.ReLU6(inplace=True)]
    return nn.Sequential(*layers)


class MobileNetV2SSDBackbone(nn.Module):
    """SSD feature extractor: maps of the trunk at ``feature_strides`` then one per extra layer.

    Input ``[B, in_channels, H, W]``; output a list of ``[B, out_channels[k], H_k, W_k]``, strides
    ``feature_strides`` then ``2 * max(feature_strides)``, ``4 * ...`` (clamped at 1x1).
    """

    def __init__(self, in_channels: int = 3, width_mult: float = 1.0,
                 feature_strides: tuple[int, ...] = (16, 32),
                 extra_channels: tuple[int, ...] = (512, 256, 256, 128), lite: bool = True,
                 last_channels: int = 1280):
        super().__init__()
        trunk = MobileNetV2(in_channels, width_mult, last_channels)
        self.in_channels = in_channels
        bad = [s for s in feature_strides if s not in trunk.stage_ends]
        if bad or list(feature_strides) != sorted(set(feature_strides)):
            raise ValueError(f"feature_strides: expected increasing values among "
                             f"{sorted(trunk.stage_ends)}, found {list(feature_strides)}")
        # split the trunk into consecutive stages, each ending at a tapped map
        self.stages = nn.ModuleList()
        start = 0
        for s in feature_strides:
            end = trunk.stage_ends[s] + 1
            self.stages.append(trunk.features[start:end])
            start = end
        self.out_channels = [trunk.stage_channels[s] for s in feature_strides]
        self.extras = nn.ModuleList()
        for c in extra_channels:
            self.extras.append(extra_block(self.out_channels[-1], c, lite))
            self.out_channels.append(c)
        for m in self.extras.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        for extra in self.extras:
            x = extra(x)
            maps.append(x)
        return maps


@torch.no_grad()
def fuse_conv_bn(module: nn.Module) -> nn.Module:
    """Fold every eval-mode ``BatchNorm2d`` that follows a ``Conv2d`` in a ``Sequential`` into
    the conv (in place), for inference only: the state dict loses the BN entries."""
    for child in module.modules():
        if not isinstance(child, nn.Sequential):
            continue
        for i in range(len(child) - 1):
            conv, bn = child[i], child[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
                conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
                child[i + 1] = nn.Identity()
    return module


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
