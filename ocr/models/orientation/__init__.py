"""Page orientation: a fine skew classifier (FFT spectrum, 0.5-degree buckets) and a 4-way
0/90/180/270 classifier in one model, their shared page preprocessing, and the classical
projection-profile baseline. Plain torch and numpy.

    model = ORIENTERS.create("deskew_fft")
    prep = PagePreprocess(side=224)
    views = prep.views([prep.page(pil_page)], [0.0])       # (B, 1, 224, 224)
    skew, conf = model.buckets.decode(model.skew_logits(torch.from_numpy(views)))
"""

from ocr.models.orientation.angles import ORIENTATIONS, AngleBuckets, compose, decompose, wrap
from ocr.models.orientation.classical import classical_skew
from ocr.models.orientation.model import OrientationNet
from ocr.models.orientation.preprocess import PageInk, PagePreprocess
from ocr.models.orientation.registry import ORIENTERS

__all__ = [
    "ORIENTATIONS", "ORIENTERS", "AngleBuckets", "OrientationNet", "PageInk", "PagePreprocess",
    "classical_skew", "compose", "decompose", "wrap",
]
