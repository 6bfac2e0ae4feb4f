"""Stage 1, transformation: rectify the input image before feature extraction.

``TPS`` is the thin-plate-spline spatial transformer of RARE (Shi et al. 2016) as written
in deep-text-recognition-benchmark (DTRB): a localization network predicts ``F`` fiducial
points, a grid generator turns them into a sampling grid, ``F.grid_sample`` warps.

Two deliberate differences from DTRB:

* the last localization layer starts at the *identity* (predicted points = the reference
  points on the image border), so an untrained TPS passes the image through unchanged;
  DTRB starts from RARE's tilted pattern (Fig. 6a), which only makes early training harder;
* the grid uses pixel-centre coordinates with ``align_corners=False``, which is what the
  grid generator's coordinates are (DTRB mixes them with ``align_corners=True``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Identity(nn.Module):
    """No transformation: (B, C, H, W) -> the same tensor."""

    def out_width(self, width: int) -> int:
        return width

    def out_height(self, height: int) -> int:
        return height

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _fiducials(num_fiducial: int) -> torch.Tensor:
    """(F, 2) reference points in [-1, 1]: F/2 along the top edge, F/2 along the bottom."""
    x = torch.linspace(-1.0, 1.0, num_fiducial // 2, dtype=torch.float64)
    top = torch.stack([x, -torch.ones_like(x)], 1)
    bottom = torch.stack([x, torch.ones_like(x)], 1)
    return torch.cat([top, bottom])


def _tps_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """U(r) = r^2 log r between every row of ``a`` (N, 2) and ``b`` (M, 2): (N, M)."""
    r = torch.cdist(a, b)
    return r.square() * torch.log(r.clamp_min(1e-6))


def _grid_matrix(num_fiducial: int, out_size: tuple[int, int]) -> torch.Tensor:
    """(H*W, F) matrix ``M`` such that ``M @ C'`` is the sampling grid for points ``C'``.

    Solves the TPS system once: with ``delta_C`` the (F+3, F+3) system matrix of the
    reference points and ``P_hat`` the (n, F+3) kernel rows of the output pixel centres,
    the grid is ``P_hat @ inv(delta_C) @ [C'; 0]`` = ``(P_hat @ inv(delta_C))[:, :F] @ C'``.
    """
    c = _fiducials(num_fiducial)
    n = num_fiducial
    delta = torch.zeros(n + 3, n + 3, dtype=torch.float64)
    delta[:n, 0] = 1
    delta[:n, 1:3] = c
    delta[:n, 3:] = _tps_kernel(c, c)
    delta[n:n + 2, 3:] = c.T
    delta[n + 2, 3:] = 1
    h, w = out_size
    ys = (torch.arange(h, dtype=torch.float64) * 2 + 1) / h - 1  # pixel centres in (-1, 1)
    xs = (torch.arange(w, dtype=torch.float64) * 2 + 1) / w - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    p = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    p_hat = torch.cat([torch.ones(h * w, 1, dtype=torch.float64), p, _tps_kernel(p, c)], 1)
    return (p_hat @ torch.linalg.inv(delta))[:, :n].float()


class TPS(nn.Module):
    """Thin-plate-spline spatial transformer: (B, C, H, W) -> (B, C, *out_size).

    Args:
        num_fiducial: number of control points ``F`` (even, >= 4).
        in_size: nominal input (H, W); the localization net pools adaptively, so other
            input sizes work too (the output is always ``out_size``).
        out_size: (H, W) of the rectified image; defaults to ``in_size``.
        in_channels: image channels (1 grey, 3 RGB).
        channels: widths of the localization net's four convolutions (DTRB: 64..512).
    """

    def __init__(self, num_fiducial: int = 20, in_size: tuple[int, int] = (32, 100),
                 out_size: tuple[int, int] | None = None, in_channels: int = 1,
                 channels: tuple[int, ...] = (64, 128, 256, 512)):
        super().__init__()
        if num_fiducial < 4 or num_fiducial % 2:
            raise ValueError(f"num_fiducial must be even and >= 4, found {num_fiducial}")
        self.num_fiducial = num_fiducial
        self.in_size = tuple(in_size)
        self.out_size = tuple(out_size or in_size)
        layers, cin = [], in_channels
        for i, cout in enumerate(channels):
            layers += [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
            layers.append(nn.MaxPool2d(2, 2) if i < len(channels) - 1 else nn.AdaptiveAvgPool2d(1))
            cin = cout
        self.conv = nn.Sequential(*layers, nn.Flatten())
        self.fc1 = nn.Sequential(nn.Linear(cin, cin // 2), nn.ReLU(True))
        self.fc2 = nn.Linear(cin // 2, num_fiducial * 2)
        nn.init.zeros_(self.fc2.weight)
        with torch.no_grad():
            self.fc2.bias.copy_(_fiducials(num_fiducial).float().reshape(-1))
        # Derived from the config, so kept out of the state_dict.
        self.register_buffer("grid_matrix", _grid_matrix(num_fiducial, self.out_size), persistent=False)

    def out_width(self, width: int) -> int:
        return self.out_size[1]

    def out_height(self, height: int) -> int:
        return self.out_size[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.size(0)
        points = self.fc2(self.fc1(self.conv(x))).view(b, self.num_fiducial, 2)  # (B, F, 2)
        grid = (self.grid_matrix @ points).view(b, *self.out_size, 2)  # (B, H, W, 2) as (x, y)
        return F.grid_sample(x, grid, padding_mode="border", align_corners=False)
