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

from ocr import paths

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


def opt(default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = None,
        path: str | None = None, keep: tuple[str, ...] = (), choices: tuple[str, ...] = (),
        hidden: bool = False, metavar: str | None = None) -> Any:
    """A config field with its ``--help`` sentence (the one place it is written).

    ``path``: the kind of local path the field holds (see :mod:`ocr.paths`), or ``charset`` /
    ``text`` for a spec that may name a file; ``keep``: values that are not paths
    (``classical``); ``choices``: the values allowed, listed in the help; ``hidden``: a
    test-only option, accepted but left out of ``--help``.
    """
    meta = {"help": help, "path": path, "keep": tuple(keep), "choices": tuple(choices),
            "hidden": hidden, "metavar": metavar}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def resolve_paths(cls, data: dict, base: str | None = None, check: bool = True) -> dict:
    """``data`` with every local path of ``cls``'s path fields made absolute from ``base``
    (default: the working folder); missing inputs are refused (see :mod:`ocr.paths`)."""
    out = dict(data)
    for f in dataclasses.fields(cls):
        kind = f.metadata.get("path")
        value = out.get(f.name)
        if not kind or value in (None, "", []):
            continue
        keep = f.metadata.get("keep", ())

        def one(v, kind=kind, keep=keep, name=f.name):
            v = str(v)
            if v in keep:
                return v
            try:
                if kind == "charset":
                    return _resolve_charset(v, base, name, check)
                if kind == "text":
                    return _resolve_text_source(v, base, name, check)
                if kind == "ingest_input":
                    return paths.resolve_input_spec(v, base, name, check)
                return paths.resolve(v, kind, base, name, check)
            except paths.PathError as e:
                raise ConfigError(str(e)) from None

        out[f.name] = [one(v) for v in value] if isinstance(value, (list, tuple)) else one(value)
    return out


def _resolve_charset(spec: str, base, name, check) -> str:
    """A charset spec naming a file (``file:X``, ``X.txt``, ``X.json``) with the file resolved."""
    if spec.startswith("file:"):
        return "file:" + paths.resolve(spec[5:], "input", base, name, check)
    if spec.endswith((".txt", ".json")) and "+" not in spec:
        return paths.resolve(spec, "input", base, name, check)
    return spec


def _resolve_text_source(spec: str, base, name, check) -> str:
    """A synth text source naming a file (``file:PATH``, ``words:PATH:MIN-MAX``), resolved."""
    kind, sep, rest = spec.partition(":")
    if kind == "file" and sep:
        return "file:" + paths.resolve(rest, "input", base, name, check)
    if kind == "words" and sep:
        path, colon, lengths = rest.rpartition(":")
        if colon and path:
            return f"words:{paths.resolve(path, 'input', base, name, check)}:{lengths}"
    return spec


def from_dict(cls, data: dict) -> Any:
    """An instance of dataclass ``cls`` from a dict, with types checked and coerced."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys {unknown}: expected some of {sorted(fields)}")
    kwargs = {k: _coerce(k, v, hints[k]) for k, v in data.items()}
    for k, v in kwargs.items():
        choices = fields[k].metadata.get("choices")
        if choices and v not in choices:
            raise ConfigError(f"{k}: expected one of {', '.join(map(str, choices))}, found {v!r}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{cls.__name__}: {e}") from None


def read_yaml(path_or_name: str) -> tuple[dict, str | None]:
    """The mapping of a YAML file (or preset) and the folder its relative paths start from."""
    path = Path(path_or_name).expanduser()
    if not path.is_file():
        path = CONFIG_DIR / f"{path_or_name}.yaml"
    if not path.is_file():
        presets = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        where = "" if Path(path_or_name).is_absolute() else f" (looked in {Path.cwd()})"
        raise ConfigError(f"config {path_or_name!r} not found{where}: expected a YAML path or one of "
                          f"{presets}")
    data = yaml.safe_load(path.read_text("utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    return data, str(path.resolve().parent)


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
    """Defaults, then a YAML file (its relative paths from its folder), then ``overrides``
    (relative paths from the working folder): every local path absolute, inputs checked."""
    data = {}
    if path:
        raw, base = read_yaml(path)
        data = resolve_paths(cls, raw, base)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    data.update(resolve_paths(cls, given))
    return from_dict(cls, data)


def absolute_paths(cfg) -> None:
    """Make ``cfg``'s local paths absolute from the working folder, in place (no checks):
    called by each config's ``__post_init__``, so a config built in code is safe to ship to
    Ray workers too. A no-op on paths already resolved by :func:`load`."""
    current = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.metadata.get("path")}
    for name, value in resolve_paths(type(cfg), current, check=False).items():
        object.__setattr__(cfg, name, value)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


# --------------------------------------------------------------------------------------
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
