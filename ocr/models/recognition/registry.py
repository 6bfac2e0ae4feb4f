"""Recogniser presets: keyword-only factories in ``RECOGNIZERS`` (see ``ocr.models.registry``).

    model = RECOGNIZERS.create("fast", num_classes=charset.num_classes)
    cfg = model.arch_config()           # {"name": "fast", "num_classes": 11, "height": 32, ...}
    same = RECOGNIZERS.create(**cfg)    # identical architecture (weights are the checkpoint's)

A factory takes keyword-only ``num_classes`` (the charset's: len(symbols) + 1), ``height`` and
``width`` (the input size it is built for: TPS's grid; stored for preprocessing), ``channels``
(1 grey or 3) and its own architecture parameters, all but ``num_classes`` with defaults.

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

from ..registry import Registry
from .backbones import FastFeatures, ResNetFeatures, VGGFeatures
from .heads import AttentionHead, CTCHead, JamoCTCHead
from .model import Recognizer
from .sequence import BiLSTM, NoSequence
from .transformation import TPS, Identity

RECOGNIZERS = Registry("recognizer")


# --- presets ----------------------------------------------------------------------------

def _ctc(features, hidden: int, num_layers: int, num_classes: int, jamo: str | bool = ""):
    channels = features.out_channels
    seq = BiLSTM(channels, hidden, num_layers) if num_layers else NoSequence(channels)
    if jamo is True:
        raise ValueError("jamo takes the charset's symbols in class order; training fills them "
                         "in for --model-set jamo=true")
    head = (JamoCTCHead(seq.out_channels, num_classes, jamo) if jamo
            else CTCHead(seq.out_channels, num_classes))
    return Recognizer(Identity(), features, seq, head)


@RECOGNIZERS.register("crnn")
def crnn(*, num_classes, height=32, width=100, channels=1, backbone_channels=512, hidden=256,
         num_layers=2, jamo="") -> Recognizer:
    """None-VGG-BiLSTM-CTC. ``num_layers=0`` drops the BiLSTM; ``jamo``: see ``fast``."""
    return _ctc(VGGFeatures(channels, backbone_channels), hidden, num_layers, num_classes, jamo)


def _trb(height, width, channels, num_fiducial, tps_channels, backbone_channels,
         layers, hidden, num_layers):
    tps = TPS(num_fiducial, (height, width), (height, width), channels, tuple(tps_channels))
    feats = ResNetFeatures(channels, backbone_channels, tuple(layers))
    return tps, feats, BiLSTM(feats.out_channels, hidden, num_layers)


@RECOGNIZERS.register("trbc")
def trbc(*, num_classes, height=32, width=100, channels=1, num_fiducial=20,
         tps_channels=(64, 128, 256, 512), backbone_channels=512, layers=(1, 2, 5, 3), hidden=256,
         num_layers=2) -> Recognizer:
    """TPS-ResNet-BiLSTM-CTC."""
    tps, feats, seq = _trb(height, width, channels, num_fiducial, tps_channels,
                           backbone_channels, layers, hidden, num_layers)
    return Recognizer(tps, feats, seq, CTCHead(seq.out_channels, num_classes))


@RECOGNIZERS.register("trba")
def trba(*, num_classes, height=32, width=100, channels=1, num_fiducial=20,
         tps_channels=(64, 128, 256, 512), backbone_channels=512, layers=(1, 2, 5, 3), hidden=256,
         num_layers=2, attn_hidden=256, max_length=25) -> Recognizer:
    """TPS-ResNet-BiLSTM-Attn; ``max_length`` symbols at most per line."""
    tps, feats, seq = _trb(height, width, channels, num_fiducial, tps_channels,
                           backbone_channels, layers, hidden, num_layers)
    head = AttentionHead(seq.out_channels, num_classes, attn_hidden, max_length)
    return Recognizer(tps, feats, seq, head)


@RECOGNIZERS.register("fast")
def fast(*, num_classes, height=32, width=100, channels=1, widths=(32, 64, 128, 192),
         blocks=(1, 1, 2), backbone_channels=256, hidden=128, num_layers=0, jamo="") -> Recognizer:
    """None-Fast-None-CTC: the CPU default. The wide depthwise kernels see ~70 px of line
    around each frame, so it needs no BiLSTM: without one it leaves CTC's all-blank phase
    in ~150 steps instead of ~400 and reads held-out fonts better sooner
    (benchmarks/README.md). ``num_layers=N`` adds an N-layer BiLSTM of ``hidden`` units.
    ``jamo``: the charset's symbols in class order (training sets them for ``--model-set
    jamo=true``): Hangul syllables are scored by their jamo (``heads.JamoCTCHead``), so every
    syllable learns from those sharing its parts (a step costs about the same: 0.65 against
    0.69 s for 64 lines at width 512 with 2,473 classes, 2 threads)."""
    feats = FastFeatures(channels, backbone_channels, tuple(widths), tuple(blocks))
    return _ctc(feats, hidden, num_layers, num_classes, jamo)


RECOGNIZERS.register("tiny_crnn", crnn, backbone_channels=32, hidden=16)
RECOGNIZERS.register("tiny_trbc", trbc, num_fiducial=6, tps_channels=(4, 8, 8, 16), backbone_channels=32,
                     layers=(1, 1, 1, 1), hidden=16)
RECOGNIZERS.register("tiny_trba", trba, num_fiducial=6, tps_channels=(4, 8, 8, 16), backbone_channels=32,
                     layers=(1, 1, 1, 1), hidden=16, attn_hidden=16, max_length=8)
RECOGNIZERS.register("tiny_fast", fast, widths=(4, 8, 8, 16), backbone_channels=16, hidden=16)
