"""Typed configs: dataclasses loaded from one YAML file, overridden from the command line.

Each command has one dataclass. :func:`load` merges, in order: the dataclass defaults, a
YAML file (a preset name under ``ocr/configs`` or a path), then ``overrides`` (from CLI
flags or ``key=value`` strings). Unknown keys and badly typed values are refused with a
message naming what was expected, before any work starts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A config that is refused before any worker starts."""


def _coerce(name: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0])
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v != ""]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, found {value!r}")
        item = args[0] if args else str
        out = [_coerce(name, v, item) for v in value]
        return tuple(out) if origin is tuple else out
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected true or false, found {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected a number, found {value!r}")
        try:
            number = float(value) if hint is float else int(str(value).replace("_", ""))
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected {hint.__name__}, found {value!r}") from None
        return number
    if hint is str:
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"{name}: expected a string, found {value!r}")
        return str(value)
    return value


def from_dict(cls, data: dict) -> Any:
    """An instance of dataclass ``cls`` from a dict, with types checked and coerced."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys {unknown}: expected some of {sorted(names)}")
    kwargs = {k: _coerce(k, v, hints[k]) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{cls.__name__}: {e}") from None


def read_yaml(path_or_name: str) -> dict:
    path = Path(path_or_name)
    if not path.is_file():
        path = CONFIG_DIR / f"{path_or_name}.yaml"
    if not path.is_file():
        presets = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise ConfigError(f"config {path_or_name!r} not found: expected a YAML path or one of {presets}")
    data = yaml.safe_load(path.read_text("utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    return data


def parse_overrides(pairs: list[str]) -> dict:
    """``["a=1", "b=x,y"]`` to ``{"a": "1", "b": "x,y"}``."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r}: expected KEY=VALUE")
        k, v = pair.split("=", 1)
        out[k.strip().replace("-", "_")] = v
    return out


def load(cls, path: str | None = None, overrides: dict | None = None) -> Any:
    data = read_yaml(path) if path else {}
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(cls, data)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


# --------------------------------------------------------------------------------------
@dataclass
class IngestConfig:
    """``ocr ingest``: raw sets to Parquet shards."""

    inputs: list[str] = field(default_factory=list)  # PATH, or SPLIT=PATH to give the split
    output: str = ""
    layout: str = "auto"          # gt | labels | aihub | filename | lmdb | labelme | coco | auto
    charset: str = "derive"       # preset, a+b union, file, or derive (from the labels)
    splits: str = "train=0.9,val=0.05,test=0.05"   # ratios, used when an input has no given split
    out_of_charset: str = "reject"   # reject the sample, or drop the symbol and count it
    max_label_length: int = 0        # 0: no limit
    height: int = 32                 # line height the model sees (for the CTC check)
    ctc_width: int = 100             # widest line the model sees; 0 disables the CTC check
    ctc_stride: int = 4              # pixels of width per CTC time step
    max_pixels: int = 50_000_000     # pixel cap, checked on the header before decoding
    separator: str | None = None     # gt/labels separator; None: the layout's default
    filename_style: str = "prefix"   # filename layout: prefix (LABEL_x.png) or stem (LABEL.png)
    image_root: str | None = None    # where images live when not the layout's default place
    source: str | None = None        # name in the source column; default: the input's name
    shard_size: int = 1024           # most samples per task (fewer for large images)
    overwrite: bool = False
    num_cpus: int | None = None      # CPUs of a local Ray started for the job

    def __post_init__(self):
        if self.out_of_charset not in ("reject", "drop"):
            raise ConfigError(f"out_of_charset: expected 'reject' or 'drop', found {self.out_of_charset!r}")
        if self.filename_style not in ("prefix", "stem"):
            raise ConfigError(f"filename_style: expected 'prefix' or 'stem', found {self.filename_style!r}")
        for name in ("height", "ctc_stride", "max_pixels", "shard_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: expected a positive number, found {getattr(self, name)}")
        if self.max_label_length < 0 or self.ctc_width < 0:
            raise ConfigError("max_label_length and ctc_width: expected >= 0 (0 disables)")
        parse_split_ratios(self.splits)

    def validate_paths(self):
        if not self.inputs:
            raise ConfigError("inputs: expected at least one input path or URI")
        if not self.output:
            raise ConfigError("output: expected a folder or s3:// URI for the shards")


def parse_split_ratios(text: str) -> dict[str, float]:
    """``"train=0.9,val=0.1"`` to normalised ratios over the known splits."""
    from ocr.data.shards import SPLITS

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
