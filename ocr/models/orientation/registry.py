"""Orientation presets: one keyword-only factory in ``ORIENTERS`` (see ``ocr.models.registry``).

    model = ORIENTERS.create("deskew_fft", side=224)
    same = ORIENTERS.create(**model.arch_config())      # everything needed to rebuild it
    side = ORIENTERS.defaults("tiny_deskew")["side"]    # the view side a preset is made for

``side`` is the view's side (the preprocessing's); any other parameter of ``orientation_net``
can be overridden by keyword; unknown keywords are refused.
"""

from __future__ import annotations

from ocr.models.orientation.model import OrientationNet
from ocr.models.registry import Registry

ORIENTERS = Registry("orientation model")


def orientation_net(*, side=224, skew_channels=(8, 16, 16), radii=48,
                    orientation_channels=(8, 16, 32, 32, 64, 64, 128),
                    orientation_strides=(2, 2, 2, 1, 2, 1, 2), layout=0) -> OrientationNet:
    """FFT skew head on ``side`` x ``side`` views plus a plain CNN orientation scorer;
    ``layout`` > 0 adds a score of where the text sits on a ``layout`` x ``layout`` grid."""
    return OrientationNet(int(side), tuple(skew_channels), int(radii), tuple(orientation_channels),
                          tuple(orientation_strides), int(layout))


# FFT skew head + 7-conv orientation CNN at 224x224: 153k parameters, CPU-friendly
# (--model-set layout=4 adds a score of where the text sits on a 4x4 grid)
ORIENTERS.register("deskew_fft", orientation_net)
# narrower orientation CNN: about half the compute
ORIENTERS.register("deskew_fft_small", orientation_net, orientation_channels=(8, 16, 24, 24, 48, 48, 96))
# test-sized: 64x64 views, a few thousand parameters
ORIENTERS.register("tiny_deskew", orientation_net, side=64, skew_channels=(4, 8), radii=16,
                   orientation_channels=(4, 8, 16), orientation_strides=(2, 2, 2))
