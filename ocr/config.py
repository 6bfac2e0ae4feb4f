"""Typed configs: dataclasses loaded from one YAML file, overridden from the command line.

Each command has one dataclass. :func:`load` merges, in order: the dataclass defaults, a
YAML file (a preset name under ``ocr/configs`` or a path), then ``overrides`` (from CLI
flags or ``key=value`` strings). Unknown keys and badly typed values are refused with a
message naming what was expected, before any work starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import field
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
                    return resolve_text_source(v, base, name, check)
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


def _named(value: str) -> bool:
    """A bundled word list or mix, given by name (``korean``), not a path (``my/words.tsv``)."""
    return "/" not in value and "." not in value


def resolve_text_source(spec: str, base: str | None = None, name: str = "text", check: bool = True) -> str:
    """A synth text source naming a file (``file:PATH``, ``words:PATH:MIN-MAX``,
    ``lexicon:PATH[:MIN-MAX]``, ``mix:PATH``) with the file made absolute from ``base``:
    sources are parsed again inside Ray tasks, which do not run in the working folder."""
    kind, sep, rest = spec.partition(":")
    if kind == "lexicon" and sep:
        head, colon, tail = rest.rpartition(":")
        path, lengths = (head, ":" + tail) if colon and tail.replace("-", "").isdigit() else (rest, "")
        if path and not _named(path):
            return f"lexicon:{paths.resolve(path, 'input', base, name, check)}{lengths}"
        return spec
    if kind == "mix" and sep and rest and not _named(rest):
        return "mix:" + paths.resolve(rest, "input", base, name, check)
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


# --- flags: one per field, with the field's help ----------------------------------------
def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def field_help(f) -> str:
    """The field's sentence, its choices and its default, for ``--help``."""
    meta = f.metadata
    text = meta.get("help") or f.name.replace("_", " ")
    default = _default(f)
    if default not in ("''", "[]", "None", "required"):
        text += f" (default: {default})"
    return text.replace("%", "%%")


def add_config_args(parser: argparse.ArgumentParser, cls, positional: tuple[str, ...] = (),
                    with_config: bool = True) -> None:
    """One flag per dataclass field (defaults stay in the dataclass: flags default to None)."""
    if with_config:
        parser.add_argument("--config", metavar="YAML", help="YAML file (or preset name) with "
                            "defaults for this command; keys as the flags with _, relative paths "
                            "in it taken from the file's folder")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        is_list = typing.get_origin(hint) in (list, tuple)
        meta = f.metadata
        choices = meta.get("choices") or None
        help_text = argparse.SUPPRESS if meta.get("hidden") else field_help(f)
        metavar = meta.get("metavar") or _metavar(hint, meta.get("path"))
        if f.name in positional:
            parser.add_argument(f.name, nargs="*" if is_list else "?", default=None, choices=choices,
                                metavar=None if choices else (metavar or f.name.upper()), help=help_text)
            parser.add_argument(_flag(f.name), dest=f"{f.name}_flag", nargs="+" if is_list else None,
                                default=None, help=argparse.SUPPRESS)
        elif hint is bool:
            parser.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction,
                                default=None, help=help_text)
        else:
            parser.add_argument(_flag(f.name), dest=f.name, nargs="+" if is_list else None,
                                default=None, choices=choices, metavar=metavar, help=help_text)


def _metavar(hint, path_kind: str | None) -> str | None:
    """PATH, N or X: what a flag's value is, at a glance."""
    if path_kind in ("input", "output", "file", "checkpoint", "ingest_input"):
        return "PATH"
    inner = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return {int: "N", float: "X"}.get(inner[0])


def _default(f) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return repr(f.default_factory())
    return "required"


def config_from_args(cls, args: argparse.Namespace):
    """The config ``cls`` from parsed flags (``--config`` YAML first, then the flags given)."""
    overrides = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, f.name, None)
        flag_value = getattr(args, f"{f.name}_flag", None)
        if value in (None, []) and flag_value is not None:
            value = flag_value
        if value not in (None, []):
            overrides[f.name] = value
    return load(cls, getattr(args, "config", None), overrides)
