"""The configs of ``ocr eval``: one per family (:mod:`ocr.eval.recognition`,
:mod:`ocr.eval.detection`, :mod:`ocr.eval.orientation`). Kept apart from the runs, so
building the CLI's parser imports no torch."""

from __future__ import annotations

from dataclasses import dataclass

from ocr.config import ConfigError, absolute_paths, opt
from ocr.data.config import LAYOUTS
from ocr.eval.box_metrics import SCORE_THRESHOLD


@dataclass
class EvalConfig:
    """``ocr eval``: how well a checkpoint reads a labelled set."""

    checkpoint: str = opt("", "recognition checkpoint folder, run folder (its best/) or s3:// URI",
                          path="checkpoint")
    data: str = opt("", "shard folder, or a raw labelled set in any `ocr ingest` layout", path="input")
    split: str = opt("test", "split to evaluate, for shard folders")
    layout: str = opt("auto", "layout of a raw set, as `ocr ingest --layout`", choices=LAYOUTS)
    separator: str | None = opt(None, "raw gt/labels sets: the separator, as `ocr ingest --separator`")
    filename_style: str = opt("prefix", "raw filename sets: prefix (LABEL_x.png) or stem (LABEL.png)",
                              choices=("prefix", "stem"))
    image_root: str | None = opt(None, "raw sets: the folder the images are in", path="input")
    output: str = opt("", "folder for predictions.csv, summary.json and report.html (default: "
                      "outputs/eval-DATA-TIMESTAMP)", path="output")
    batch_size: int = opt(64, "lines per model call")
    worst: int = opt(50, "worst cases shown in report.html")
    limit: int = opt(0, "evaluate the first N samples only (0: all)")

    def __post_init__(self):
        absolute_paths(self)
        if not self.checkpoint or not self.data:
            raise ConfigError("checkpoint and data: expected a checkpoint and a labelled set")
        if self.batch_size <= 0:
            raise ConfigError(f"batch_size: expected a positive number, found {self.batch_size}")


@dataclass
class DetectionEvalConfig:
    """``ocr eval`` (``ocr eval-detection``) for detection checkpoints."""

    checkpoint: str = opt("", "detection checkpoint folder, run folder (its best/) or s3:// URI",
                          path="checkpoint")
    data: str = opt("", "shard folder, or a raw LabelMe folder / COCO JSON", path="input")
    split: str = opt("test", "split to evaluate, for shard folders")
    layout: str = opt("auto", "layout of a raw set", choices=("auto", "labelme", "coco"))
    image_root: str | None = opt(None, "raw COCO sets: the folder the images are in", path="input")
    roi_checkpoint: str = opt("", "with a char checkpoint: the ROI model that finds the lines (reads "
                              "them end to end)", path="checkpoint")
    gt_label: str = opt("", "box label of the data to score ROI boxes against (default: the "
                        "checkpoint's target; LabelMe sets often say text)")
    score_threshold: float = opt(SCORE_THRESHOLD, "boxes below this score are left out of precision, "
                                 "recall, drawings, JSON and line reading")
    max_lines: int = opt(100, "end to end: lines read per page at most (best scores first)")
    output: str = opt("", "folder for summary.json and the rest (default: outputs/eval-DATA-TIMESTAMP)",
                      path="output")
    save_images: bool = opt(False, "draw the boxes into OUTPUT/images/")
    save_json: bool = opt(False, "write the predictions in the input's layout (see --json-layout)")
    json_layout: str = opt("auto", "layout of --save-json: auto (the input's; coco for shards), "
                           "labelme or coco", choices=("auto", "labelme", "coco"))
    batch_size: int = opt(16, "pages per model call")
    limit: int = opt(0, "evaluate the first N images only (0: all)")
    device: str = opt("auto", "auto (cuda when available), cpu or cuda", choices=("auto", "cpu", "cuda"))

    def __post_init__(self):
        absolute_paths(self)
        if not self.checkpoint or not self.data:
            raise ConfigError("checkpoint and data: expected a detection checkpoint and a labelled set")
        if self.json_layout not in ("auto", "labelme", "coco"):
            raise ConfigError(f"json_layout: expected auto, labelme or coco, found {self.json_layout!r}")
        if self.batch_size <= 0 or self.max_lines <= 0 or not 0 <= self.score_threshold <= 1:
            raise ConfigError(f"batch_size > 0, max_lines > 0 and score_threshold in [0, 1] expected, "
                              f"found {self.batch_size}, {self.max_lines} and {self.score_threshold}")


@dataclass
class OrientationEvalConfig:
    """``ocr eval`` of an orientation checkpoint, or of the classical method."""

    checkpoint: str = opt("", "orientation checkpoint or run folder; classical: the projection-profile "
                          "method, no model", path="checkpoint", keep=("classical",))
    data: str = opt("", "shard folder (any task; its angle column, else 0) or a folder of images",
                    path="input")
    split: str = opt("test", "split to evaluate, for shard folders")
    turn: float = opt(0.0, "also turn each page by an angle in [-turn, turn) degrees (fixed by its id)")
    output: str = opt("", "folder for predictions.csv and summary.json (default: "
                      "outputs/eval-DATA-TIMESTAMP)", path="output")
    batch_size: int = opt(16, "pages per model call")
    limit: int = opt(0, "the first N pages only (0: all)")
    device: str = opt("cpu", "torch device: cpu or cuda")

    def __post_init__(self):
        absolute_paths(self)
        if not self.checkpoint or not self.data:
            raise ConfigError("checkpoint and data: expected an orientation checkpoint (or 'classical') "
                              "and a shard or image folder")
        if self.batch_size <= 0 or self.limit < 0 or not 0 <= self.turn <= 180:
            raise ConfigError(f"expected batch_size > 0, limit >= 0 and turn in [0, 180], found "
                              f"{self.batch_size}, {self.limit}, {self.turn}")
