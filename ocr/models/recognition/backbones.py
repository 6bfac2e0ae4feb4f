"""Stage 2, feature extraction: image (B, C, H, W) -> sequence (B, T, D).

Every backbone turns the image into a feature map (B, D, H', T), averages it over the
remaining height (DTRB's ``AdaptiveAvgPool2d((None, 1))``) and returns (B, T, D), one
feature vector per horizontal position. ``time_steps(width)`` gives the exact ``T`` for an
input width, ``out_channels`` is ``D`` and ``min_height`` the smallest input height the
layers accept (32 for VGG and ResNet: their height shrinks to exactly 1 at 32; taller
inputs leave a few rows, which are averaged).

* ``VGGFeatures``    CRNN's VGG (DTRB ``VGG_FeatureExtractor``), T = W//4 - 1.
* ``ResNetFeatures`` DTRB's ResNet (FAN / ResNet-45-like, blocks 1-2-5-3), T = W//4 + 1.
* ``FastFeatures``   a small CPU-first extractor, T = ceil(W/4).
"""

from __future__ import annotations

from torch import Tensor, nn


def conv_bn(cin: int, cout: int, kernel=3, stride=1, groups: int = 1, padding=None) -> nn.Sequential:
    """Conv (default padding keeps the size at stride 1) + BatchNorm + ReLU."""
    k = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    pad = (k[0] // 2, k[1] // 2) if padding is None else padding
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Features(nn.Module):
    """Base: ``self.body`` maps (B, C, H, W) to (B, D, H', T); forward returns (B, T, D)."""

    in_channels: int
    out_channels: int
    min_height: int = 32
    channels_last: bool = False  # trains faster in channels-last memory (see ocr.train.loop)

    def time_steps(self, width: int) -> int:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x).mean(2).transpose(1, 2)


class VGGFeatures(_Features):
    """CRNN's VGG as in DTRB: (B, C, H>=32, W) -> (B, W//4 - 1, out_channels).

    Widths are out_channels/8, /4, /2, /1 (64-128-256-512 at the default 512). Height is
    halved four times (32 -> 2) and a final 2x2 valid convolution makes it 1 (and the
    width one step shorter).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 512):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        c1, c2, c3, c4 = out_channels // 8, out_channels // 4, out_channels // 2, out_channels
        relu = lambda: nn.ReLU(inplace=True)  # noqa: E731
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, 1, 1), relu(), nn.MaxPool2d(2, 2),          # H/2,  W/2
            nn.Conv2d(c1, c2, 3, 1, 1), relu(), nn.MaxPool2d(2, 2),                   # H/4,  W/4
            nn.Conv2d(c2, c3, 3, 1, 1), relu(),
            nn.Conv2d(c3, c3, 3, 1, 1), relu(), nn.MaxPool2d((2, 1), (2, 1)),         # H/8,  W/4
            conv_bn(c3, c4), conv_bn(c4, c4), nn.MaxPool2d((2, 1), (2, 1)),           # H/16, W/4
            nn.Conv2d(c4, c4, 2, 1, 0), relu(),                                       # H/16-1, W/4-1
        )

    def time_steps(self, width: int) -> int:
        return width // 2 // 2 - 1


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-BN, identity or 1x1 projection shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = conv_bn(cin, cout)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Identity() if cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNetFeatures(_Features):
    """DTRB's ResNet: (B, C, H>=32, W) -> (B, W//4 + 1, out_channels).

    Stem out/16, out/8; stages of ``layers`` basic blocks at out/4, out/2, out, out
    (32-64 | 128-256-512-512 at the default 512), each stage followed by a 3x3 conv-BN.
    The third pooling (2x2, stride (2,1), padding (0,1)) and the 2x2 convs of the last
    stage are DTRB's, hence T = W//4 + 1.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 512,
                 layers: tuple[int, ...] = (1, 2, 5, 3)):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        oc = out_channels
        widths = (oc // 4, oc // 2, oc, oc)

        def stage(cin, cout, n):
            blocks = [BasicBlock(cin if i == 0 else cout, cout) for i in range(n)]
            return nn.Sequential(*blocks, conv_bn(cout, cout))

        self.body = nn.Sequential(
            conv_bn(in_channels, oc // 16), conv_bn(oc // 16, oc // 8),
            nn.MaxPool2d(2, 2),                                                    # H/2,  W/2
            stage(oc // 8, widths[0], layers[0]),
            nn.MaxPool2d(2, 2),                                                    # H/4,  W/4
            stage(widths[0], widths[1], layers[1]),
            nn.MaxPool2d(2, (2, 1), (0, 1)),                                       # H/8,  W/4+1
            stage(widths[1], widths[2], layers[2]),
            *[BasicBlock(widths[2] if i == 0 else widths[3], widths[3]) for i in range(layers[3])],
            nn.Conv2d(widths[3], widths[3], 2, (2, 1), (0, 1), bias=False),        # H/16, W/4+2
            nn.BatchNorm2d(widths[3]), nn.ReLU(inplace=True),
            nn.Conv2d(widths[3], widths[3], 2, 1, 0, bias=False),                  # H/16-1, W/4+1
            nn.BatchNorm2d(widths[3]), nn.ReLU(inplace=True),
        )

    def time_steps(self, width: int) -> int:
        return width // 2 // 2 + 1


class SepBlock(nn.Module):
    """Depthwise (kernel, stride) conv-BN-ReLU then pointwise conv-BN-ReLU; residual if shapes match."""

    def __init__(self, cin: int, cout: int, stride=(1, 1), kernel=(3, 3)):
        super().__init__()
        self.dw = conv_bn(cin, cin, kernel, stride, groups=cin)
        self.pw = conv_bn(cin, cout, 1)
        self.residual = tuple(stride) == (1, 1) and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.pw(self.dw(x))
        return x + y if self.residual else y


class FastFeatures(_Features):
    """CPU-first extractor: (B, C, H>=17, W) -> (B, ceil(W/4), out_channels).

    The two full 3x3 convolutions of the stem take H and W to a quarter at once, so
    everything after runs on 8 x W/4 positions or fewer (at H=32). Then depthwise-separable
    blocks at ``widths[1:]`` halve the height twice more (stride (2,1), the width -- the
    time axis -- is kept), with wide (3x5) depthwise kernels for horizontal context, and a
    (2,1) convolution to ``out_channels`` folds the last two rows (H=32 -> one row).
    Convolutions + ReLU only, so oneDNN runs it well on 2 cores.
    """

    min_height = 17
    channels_last = True  # 1.5x a training step on the CPU (VGG and ResNet: no gain or slower)

    def __init__(self, in_channels: int = 1, out_channels: int = 256,
                 widths: tuple[int, ...] = (32, 64, 128, 192), blocks: tuple[int, ...] = (1, 1, 2)):
        super().__init__()
        if len(blocks) != len(widths) - 1:
            raise ValueError(f"FastFeatures needs len(blocks) == len(widths) - 1, found "
                             f"widths={tuple(widths)} blocks={tuple(blocks)}")
        self.in_channels, self.out_channels = in_channels, out_channels
        w0, *rest = widths
        layers = [conv_bn(in_channels, w0, 3, 2), conv_bn(w0, rest[0], 3, 2)]    # H/4, W/4
        cin = rest[0]
        for i, (cout, n) in enumerate(zip(rest, blocks)):
            stride = (1, 1) if i == 0 else (2, 1)                                  # H/4, H/8, H/16
            for j in range(n):
                layers.append(SepBlock(cin, cout, stride if j == 0 else (1, 1), (3, 5)))
                cin = cout
        layers.append(conv_bn(cin, out_channels, (2, 1), (2, 1), padding=0))
        self.body = nn.Sequential(*layers)

    def time_steps(self, width: int) -> int:
        return -(-width // 4)
