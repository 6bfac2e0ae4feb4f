"""Text-line recognition models: DTRB's four stages, assembled and registered as presets."""

from .backbones import FastFeatures, ResNetFeatures, VGGFeatures
from .ctc import ctc_feasible, ctc_greedy_decode
from .heads import AttentionHead, CTCHead, JamoCTCHead, attention_gold, attention_greedy_decode, hangul_jamo
from .model import Recognizer
from .registry import RECOGNIZERS
from .sequence import BiLSTM, NoSequence
from .transformation import TPS, Identity

__all__ = [
    "TPS", "Identity", "VGGFeatures", "ResNetFeatures", "FastFeatures", "BiLSTM", "NoSequence",
    "CTCHead", "JamoCTCHead", "hangul_jamo", "AttentionHead", "attention_gold",
    "attention_greedy_decode", "Recognizer",
    "RECOGNIZERS", "ctc_greedy_decode", "ctc_feasible",
]
