"""Registry of recogniser presets with keyword-only factories (timm / doctr style).

    model = create_recognizer("fast", num_classes=charset.num_classes)
    cfg = model.arch_config()          # {"name": "fast", "num_classes": 11, "height": 32, ...}
    same = create_recognizer(**cfg)    # identical architecture (weights are the checkpoint's)

A factory takes keyword-only ``num_classes, height, width, channels`` and its own
architecture parameters, all with defaults; ``create_recognizer`` records every bound
argument (defaults included) as the model's ``arch_config()``, so keep them JSON-able.

Presets (DTRB names: Transformation-Features-Sequence-Prediction):

=========  ==============================  ========================================
crnn       None-VGG-BiLSTM-CTC             Shi et al. 2016, DTRB's CRNN
trbc       TPS-ResNet-BiLSTM-CTC           DTRB
trba       TPS-ResNet-BiLSTM-Attn          DTRB's best model
fast       None-Fast-None-CTC              CPU default: FastFeatures; ``num_layers=2`` adds a BiLSTM
tiny_*     the same with a few channels    for tests
=========  ==============================  ========================================
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

from .backbones import FastFeatures, ResNetFeatures, VGGFeatures
from .heads import AttentionHead, CTCHead
from .model import Recognizer
from .sequence import BiLSTM, NoSequence
from .transformation import TPS, Identity

_REGISTRY: dict[str, Callable[..., Recognizer]] = {}


def register_recognizer(name: str):
    """Decorator: register ``fn(*, num_classes, height, width, channels, **params)`` as ``name``."""
    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"recognizer {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn
    return deco


def list_recognizers() -> list[str]:
    return sorted(_REGISTRY)


def _jsonable(value, where: str):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v, where) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"architecture parameter {where} must be JSON-able, found {type(value).__name__}")


def create_recognizer(name: str, *, num_classes: int, height: int = 32, width: int = 100,
                      channels: int = 1, **overrides) -> Recognizer:
    """Build preset ``name`` for ``num_classes`` (the charset's: len(symbols) + 1).

    ``height``/``width`` are the input size the model is built for (TPS's grid; stored for
    preprocessing), ``channels`` 1 (grey) or 3. ``overrides`` change the preset's own
    parameters (see the factory's signature); unknown ones are refused.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown recognizer {name!r}: expected one of {', '.join(list_recognizers())}")
    fn = _REGISTRY[name]
    sig = inspect.signature(fn)
    unknown = sorted(set(overrides) - set(sig.parameters))
    if unknown:
        known = [p for p in sig.parameters if p not in ("num_classes", "height", "width", "channels")]
        raise ValueError(f"recognizer {name!r} has no parameter(s) {unknown}: expected some of {known}")
    bound = sig.bind(num_classes=num_classes, height=height, width=width, channels=channels, **overrides)
    bound.apply_defaults()
    model = fn(**bound.arguments)
    model._arch = {"name": name, **{k: _jsonable(v, k) for k, v in bound.arguments.items()}}
    return model


# --- presets ----------------------------------------------------------------------------

def _ctc(features, hidden: int, num_layers: int, num_classes: int, transformation=None):
    channels = features.out_channels
    seq = BiLSTM(channels, hidden, num_layers) if num_layers else NoSequence(channels)
    return Recognizer(transformation or Identity(), features, seq, CTCHead(seq.out_channels, num_classes))


@register_recognizer("crnn")
def crnn(*, num_classes, height=32, width=100, channels=1, backbone_channels=512, hidden=256,
         num_layers=2) -> Recognizer:
    """None-VGG-BiLSTM-CTC. ``num_layers=0`` drops the BiLSTM."""
    return _ctc(VGGFeatures(channels, backbone_channels), hidden, num_layers, num_classes)


def _trb(height, width, channels, num_fiducial, tps_channels, backbone_channels,
         layers, hidden, num_layers):
    tps = TPS(num_fiducial, (height, width), (height, width), channels, tuple(tps_channels))
    feats = ResNetFeatures(channels, backbone_channels, tuple(layers))
    return tps, feats, BiLSTM(feats.out_channels, hidden, num_layers)


@register_recognizer("trbc")
def trbc(*, num_classes, height=32, width=100, channels=1, num_fiducial=20,
         tps_channels=(64, 128, 256, 512), backbone_channels=512, layers=(1, 2, 5, 3), hidden=256,
         num_layers=2) -> Recognizer:
    """TPS-ResNet-BiLSTM-CTC."""
    tps, feats, seq = _trb(height, width, channels, num_fiducial, tps_channels,
                           backbone_channels, layers, hidden, num_layers)
    return Recognizer(tps, feats, seq, CTCHead(seq.out_channels, num_classes))


@register_recognizer("trba")
def trba(*, num_classes, height=32, width=100, channels=1, num_fiducial=20,
         tps_channels=(64, 128, 256, 512), backbone_channels=512, layers=(1, 2, 5, 3), hidden=256,
         num_layers=2, attn_hidden=256, max_length=25) -> Recognizer:
    """TPS-ResNet-BiLSTM-Attn; ``max_length`` symbols at most per line."""
    tps, feats, seq = _trb(height, width, channels, num_fiducial, tps_channels,
                           backbone_channels, layers, hidden, num_layers)
    head = AttentionHead(seq.out_channels, num_classes, attn_hidden, max_length)
    return Recognizer(tps, feats, seq, head)


@register_recognizer("fast")
def fast(*, num_classes, height=32, width=100, channels=1, widths=(32, 64, 128, 192),
         blocks=(1, 1, 2), backbone_channels=256, hidden=128, num_layers=0) -> Recognizer:
    """None-Fast-None-CTC: the CPU default. The wide depthwise kernels see ~70 px of line
    around each frame, so it needs no BiLSTM: without one it leaves CTC's all-blank phase
    in ~150 steps instead of ~400 and reads held-out fonts better sooner
    (benchmarks/README.md). ``num_layers=N`` adds an N-layer BiLSTM of ``hidden`` units."""
    feats = FastFeatures(channels, backbone_channels, tuple(widths), tuple(blocks))
    return _ctc(feats, hidden, num_layers, num_classes)


register_recognizer("tiny_crnn")(functools.partial(crnn, backbone_channels=32, hidden=16))
register_recognizer("tiny_trbc")(functools.partial(
    trbc, num_fiducial=6, tps_channels=(4, 8, 8, 16), backbone_channels=32, layers=(1, 1, 1, 1),
    hidden=16))
register_recognizer("tiny_trba")(functools.partial(
    trba, num_fiducial=6, tps_channels=(4, 8, 8, 16), backbone_channels=32, layers=(1, 1, 1, 1),
    hidden=16, attn_hidden=16, max_length=8))
register_recognizer("tiny_fast")(functools.partial(
    fast, widths=(4, 8, 8, 16), backbone_channels=16, hidden=16))
