"""The data configs: ``IngestConfig`` (``ocr ingest``), ``SynthConfig`` (``ocr synth``) and the
split ratios both take. Kept apart from the jobs, so building the CLI's parser imports no Ray."""

from __future__ import annotations

from dataclasses import dataclass

from ocr.config import ConfigError, absolute_paths, opt
from ocr.data.shards import SPLITS
from ocr.data.synth.augment import STYLE_MIXES, STYLE_PRESETS

STYLES = (*STYLE_PRESETS, *STYLE_MIXES)

LAYOUTS = ("auto", "gt", "labels", "aihub", "filename", "lmdb", "labelme", "coco")


@dataclass
class IngestConfig:
    """``ocr ingest``: raw sets to Parquet shards."""

    inputs: list[str] = opt(
        factory=list, path="ingest_input", metavar="[SPLIT=]PATH",
        help="raw sets to read: a gt/labels file, an AI Hub JSON, a folder, an LMDB, a COCO JSON, "
             "local or s3://; write SPLIT=PATH (train, val, test) to give a set its split")
    output: str = opt("", "folder (or s3:// URI) to write the shards, manifest.json and rejects.jsonl to",
                      path="output")
    layout: str = opt("auto", "layout of the inputs; auto detects it from each input", choices=LAYOUTS)
    charset: str = opt("derive", "symbols allowed in labels: a preset (digits, lower, latin, hangul, "
                       "hangul_full, korean), a union such as digits+hangul, a .txt/.json file, or "
                       "derive (every symbol of the clean labels)", path="charset")
    splits: str = opt("train=0.9,val=0.05,test=0.05", "split ratios for inputs given without SPLIT=")
    out_of_charset: str = opt("reject", "a label with symbols outside the charset: reject the sample, "
                              "or drop the symbols (counted in the manifest)", choices=("reject", "drop"))
    max_label_length: int = opt(0, "longest label in characters; longer ones are rejected (0: no limit)")
    height: int = opt(32, "line height in pixels the model will see (for the CTC check)")
    ctc_width: int = opt(100, "widest line in pixels the model will see; a label must fit its CTC time "
                         "steps (0: no CTC check)")
    ctc_stride: int = opt(4, "pixels of width per CTC time step")
    max_pixels: int = opt(50_000_000, "largest image in pixels (width x height), read from the header "
                          "before decoding; larger ones are rejected (decompression bombs)")
    max_file_bytes: int = opt(50 << 20, "largest input image file in bytes (default 50 MiB), checked "
                              "from its size (the file's stat, the S3 object's size, the LMDB "
                              "value's length) before it is read; larger ones are rejected as "
                              "file_too_large (0: no cap)")
    separator: str | None = opt(None, "separator between image path and label in gt/labels files "
                                "(default: the layout's, a tab for gt, the first space for labels)")
    filename_style: str = opt("prefix", "filename layout: prefix reads LABEL_anything.png (TRDG), stem "
                              "reads LABEL.png", choices=("prefix", "stem"))
    labelme_text: str = opt("auto", "LabelMe shape field holding a box's text: auto (text, then "
                            "description, then label), label, description, or any other field name")
    image_root: str | None = opt(None, "folder the images are in, when not the layout's usual place",
                                 path="input")
    source: str | None = opt(None, "name written in the shards' source column (default: the input's name)")
    shard_size: int = opt(1024, "most samples per Ray task and Parquet file (fewer for large images)")
    overwrite: bool = opt(False, "replace an existing output folder instead of refusing to")
    num_cpus: int | None = opt(None, "CPUs of the local Ray started for this command (default: all; "
                               "ignored when joining a running Ray)")

    def __post_init__(self):
        absolute_paths(self)
        if self.out_of_charset not in ("reject", "drop"):
            raise ConfigError(f"out_of_charset: expected 'reject' or 'drop', found {self.out_of_charset!r}")
        if self.filename_style not in ("prefix", "stem"):
            raise ConfigError(f"filename_style: expected 'prefix' or 'stem', found {self.filename_style!r}")
        for name in ("height", "ctc_stride", "max_pixels", "shard_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: expected a positive number, found {getattr(self, name)}")
        for name in ("max_label_length", "ctc_width", "max_file_bytes"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: expected >= 0 (0 disables), found {getattr(self, name)}")
        parse_split_ratios(self.splits)

    def validate_paths(self):
        if not self.inputs:
            raise ConfigError("inputs: expected at least one input path or URI")
        if not self.output:
            raise ConfigError("output: expected a folder or s3:// URI for the shards")


def parse_split_ratios(text: str) -> dict[str, float]:
    """``"train=0.9,val=0.1"`` to normalised ratios over the known splits."""
    ratios = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in SPLITS:
            raise ConfigError(f"splits: unknown split {name!r}, expected some of {SPLITS}")
        try:
            ratios[name] = float(value)
        except ValueError:
            raise ConfigError(f"splits: expected {name}=<ratio>, found {part!r}") from None
    total = sum(ratios.values())
    if total <= 0 or any(v < 0 for v in ratios.values()):
        raise ConfigError(f"splits: expected non-negative ratios with a positive sum, found {text!r}")
    return {k: v / total for k, v in ratios.items()}


@dataclass
class SynthConfig:
    """``ocr synth``: rendered lines (recognition) or pages (detection) into shards."""

    output: str = opt("", "folder (or s3:// URI) to write the shards to", path="output")
    kind: str = opt("line", "what to render: text lines (recognition shards) or pages with line, "
                    "word and character boxes (detection shards)", choices=("line", "page"))
    text: str = opt("digits:1-8", "text source: digits:MIN-MAX, random:CHARSET:MIN-MAX, file:PATH "
                    "(a line of the file at a time), words:PATH:MIN-MAX (MIN to MAX words of it), "
                    "lexicon:korean|english|PATH[:MIN-MAX] (frequency-weighted words), "
                    "template:KIND[:ko|en] (number, price, date, time, phone, address, code, unit, any) "
                    "or mix:korean|latin|digits|PATH.yaml (lines of weighted sources)",
                    path="text")
    count: int = opt(1000, "samples (lines or pages) to render")
    seed: int = opt(0, "random seed: the same seed gives the same shards")
    height: int = opt(32, "line height in pixels")
    fonts: list[str] = opt(factory=list, path="input", metavar="PATH",
                           help="font files or folders to draw with (default: the system's fonts)")
    font_include: list[str] = opt(factory=list, metavar="TEXT",
                                  help="keep only fonts whose name (such as DejaVu Sans Bold; `fc-list : "
                                       "fullname` lists them) contains one of these, ignoring case, spaces "
                                       "and hyphens (UnBatang matches Un Batang)")
    font_exclude: list[str] = opt(factory=list, metavar="TEXT",
                                  help="drop fonts whose name contains one of these, matched as "
                                       "--font-include (hold fonts out for evaluation)")
    font_weight: list[str] = opt(factory=list, metavar="TEXT=W",
                                 help="draw lines in fonts whose name contains TEXT (matched as "
                                      "--font-include) W "
                                      "times as often as in the others, e.g. DSEG=6 for more "
                                      "seven-segment lines")
    glyphs: str = opt("", "folder of real crops per symbol (DIR/<symbol>/*.png, U+XXXX for symbols a "
                      "folder name cannot hold): lines are composed from them instead of drawn with a "
                      "font, for styles no font has", path="input")
    glyph_share: float = opt(1.0, "with --glyphs: the share of lines composed from the crops; the "
                             "others are drawn with fonts")
    style: str = opt("default", "augmentation preset: none (black on white), default (seed 001's mix, "
                     "grayscale), color, scan (grey and faded ink, paper, JPEG), photo (colour, uneven "
                     "light, perspective, blur), screen (flat colours, scaled pixels), or real (one of "
                     "those per line)", choices=STYLES)
    style_set: list[str] = opt(factory=list, metavar="KEY=VALUE",
                               help="line style parameters to change, such as random_skew=4")
    page_width: int = opt(640, "page width in pixels")
    page_height: int = opt(480, "page height in pixels")
    lines_per_page: str = opt("3-8", "text lines per page, MIN-MAX")
    max_angle: float = opt(0.0, "pages are turned by a uniform angle in [-max_angle, max_angle] "
                           "degrees")
    image_format: str = opt("png", "encoding of the stored images", choices=("png", "jpeg"))
    charset: str = opt("derive", "the shards' charset: derive (every symbol the text source can "
                       "produce), a preset, a union, or a .txt/.json file", path="charset")
    splits: str = opt("train=0.9,val=0.05,test=0.05", "ratios of the train, val and test splits")
    source: str = opt("synth", "name written in the shards' source column")
    shard_size: int = opt(512, "samples per Ray task and Parquet file")
    overwrite: bool = opt(False, "replace an existing output folder instead of refusing to")
    num_cpus: int | None = opt(None, "CPUs of the local Ray started for this command (default: all; "
                               "ignored when joining a running Ray)")

    def font_weights(self) -> list[tuple[str, float]]:
        """``font_weight`` as (lower-cased name part, weight) pairs; refused unless TEXT=W, W > 0."""
        pairs = []
        for item in self.font_weight:
            text, _, weight = item.rpartition("=")
            try:
                value = float(weight)
            except ValueError:
                value = -1.0
            if not text.strip() or not value > 0:
                raise ConfigError(f"font_weight {item!r}: expected TEXT=W with part of a font's name "
                                  "and a weight above 0, such as DSEG=6")
            pairs.append((text.strip().lower(), value))
        return pairs

    def __post_init__(self):
        absolute_paths(self)
        if self.kind not in ("line", "page"):
            raise ConfigError(f"kind: expected 'line' or 'page', found {self.kind!r}")
        if self.style not in STYLES:
            raise ConfigError(f"style: expected one of {', '.join(STYLES)}, found {self.style!r}")
        if self.image_format not in ("png", "jpeg"):
            raise ConfigError(f"image_format: expected png or jpeg, found {self.image_format!r}")
        if not 0 <= self.glyph_share <= 1:
            raise ConfigError(f"glyph_share: expected a share from 0 to 1, found {self.glyph_share}")
        if self.glyphs and self.kind != "line":
            raise ConfigError("glyphs: glyph banks compose text lines; expected --kind line")
        if self.count < 1 or self.height < 8 or self.shard_size < 1:
            raise ConfigError("count and shard_size must be >= 1 and height >= 8")
        parse_split_ratios(self.splits)
        self.font_weights()
