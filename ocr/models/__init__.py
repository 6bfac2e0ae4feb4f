"""Model families (recognition, detection, orientation) and their preset registries; no I/O at import."""

from ocr.models.detection import DETECTORS
from ocr.models.orientation import ORIENTERS
from ocr.models.recognition import RECOGNIZERS

REGISTRIES = {"recognition": RECOGNIZERS, "detection": DETECTORS, "orientation": ORIENTERS}

__all__ = ["DETECTORS", "ORIENTERS", "RECOGNIZERS", "REGISTRIES"]
