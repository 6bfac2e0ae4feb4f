"""Named orientation presets with a keyword-only factory (doctr / timm style).

    model = create_orienter("deskew_fft", side=224)
    same = build_orienter(model.arch_config())      # everything needed to rebuild it

``side`` is the view's side (the preprocessing's); any other preset parameter can be
overridden by keyword; unknown keywords are refused.
"""

from __future__ import annotations

from ocr.models.orientation.model import OrientationNet

_DEFAULTS: dict = {
    "side": 224,
    "skew_channels": [8, 16, 16],
    "radii": 48,
    "orientation_channels": [8, 16, 32, 32, 64, 64, 128],
    "orientation_strides": [2, 2, 2, 1, 2, 1, 2],
    "layout": 0,
}

_PRESETS: dict[str, dict] = {
    # FFT skew head + 7-conv orientation CNN at 224x224: 153k parameters, CPU-friendly
    # (--model-set layout=4 adds a score of where the text sits on a 4x4 grid)
    "deskew_fft": {},
    # narrower orientation CNN: about half the compute
    "deskew_fft_small": {"orientation_channels": [8, 16, 24, 24, 48, 48, 96]},
    # test-sized: 64x64 views, a few thousand parameters
    "tiny_deskew": {"side": 64, "skew_channels": [4, 8], "radii": 16,
                    "orientation_channels": [4, 8, 16], "orientation_strides": [2, 2, 2]},
}


def list_orienters() -> list[str]:
    return sorted(_PRESETS)


def preset_side(name: str) -> int:
    """The view side preset ``name`` is made for."""
    if name not in _PRESETS:
        raise ValueError(f"unknown orientation model {name!r}: expected one of {list_orienters()}")
    return int({**_DEFAULTS, **_PRESETS[name]}["side"])


def create_orienter(name: str, **overrides) -> OrientationNet:
    """Build preset ``name`` (see the module docstring)."""
    preset_side(name)
    unknown = sorted(set(overrides) - set(_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {name}: expected some of {sorted(_DEFAULTS)}")
    cfg = {**_DEFAULTS, **_PRESETS[name], **overrides}
    cfg = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in cfg.items()}
    model = OrientationNet(int(cfg["side"]), tuple(cfg["skew_channels"]), int(cfg["radii"]),
                           tuple(cfg["orientation_channels"]), tuple(cfg["orientation_strides"]),
                           int(cfg["layout"]))
    model.arch = {"name": name, **cfg}
    return model


def build_orienter(config: dict) -> OrientationNet:
    """Rebuild a model from :meth:`OrientationNet.arch_config` (e.g. read from ``model.json``)."""
    config = dict(config)
    return create_orienter(config.pop("name"), **config)
