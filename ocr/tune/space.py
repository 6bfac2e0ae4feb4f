"""Search spaces: a YAML mapping of training keys to distributions, checked point by point.

    lr: {loguniform: [1.0e-4, 1.0e-2]}
    batch_size: {choice: [32, 64]}
    model: {grid: [fast, crnn]}
    hidden: {choice: [64, 128]}        # a model parameter: becomes model_set hidden=...
    width: {choice: [100, 128]}
    augment: {uniform: [0.0, 0.6]}
    warmup_steps: 100                  # a constant

Keys are ``TrainConfig`` fields, or model parameters (``hidden``, or ``model_set.NAME``).
The charset and ``num_classes`` always come from the data: a space that names them is
refused. :func:`points` turns a space into the explicit list of points the sweep will
run: the grid's product, times ``num_samples`` random draws (seeded), so every point can be
checked before any trial starts.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from typing import Any

import yaml

from ocr.config import ConfigError
from ocr.train.config import TrainConfig

FORBIDDEN = {"charset", "num_classes", "classes", "alphabet", "nclasses"}
RUN_KEYS = {"name", "storage", "data", "val_data", "task", "init_from", "num_cpus", "fault_at_step"}
MODEL_PARAMS = {"hidden"}
DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform", "randint")


def load_space(path_or_text: str) -> dict:
    try:
        with open(path_or_text, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"space {path_or_text}: file not found") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"space {path_or_text}: expected a mapping of keys to distributions")
    return data


def check_space(space: dict) -> None:
    """Refuse keys that would change what the data decides, or that no trial can take."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for key, spec in space.items():
        bare = key.split(".", 1)[-1].lower()
        if key.lower() in FORBIDDEN or bare in FORBIDDEN or key == "model_set":
            raise ConfigError(f"space key {key!r}: the charset and num_classes come from the dataset "
                              "manifest (num_classes = len(charset) + 1); a sweep may not set them")
        if key in RUN_KEYS:
            raise ConfigError(f"space key {key!r}: a run setting, not a hyperparameter; set it in "
                              "the training config")
        if key not in fields and key not in MODEL_PARAMS and not key.startswith("model_set."):
            raise ConfigError(f"space key {key!r}: expected a TrainConfig field, 'hidden' or "
                              f"'model_set.NAME'; found neither")
        if isinstance(spec, dict):
            if len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
                raise ConfigError(f"space key {key!r}: expected one of {DISTRIBUTIONS}, found {spec}")
            kind, args = next(iter(spec.items()))
            if kind in ("uniform", "loguniform", "randint") and (
                    not isinstance(args, list) or len(args) != 2 or not args[0] < args[1]):
                raise ConfigError(f"space key {key!r}: {kind} expects [low, high] with low < high, "
                                  f"found {args}")
            if kind == "loguniform" and float(args[0]) <= 0:
                raise ConfigError(f"space key {key!r}: loguniform needs a positive low, found {args[0]}")
            if kind in ("grid", "choice") and (not isinstance(args, list) or not args):
                raise ConfigError(f"space key {key!r}: {kind} expects a non-empty list, found {args}")


def _draw(spec: Any, rng: random.Random) -> Any:
    if not isinstance(spec, dict):
        return spec
    kind, args = next(iter(spec.items()))
    if kind == "choice":
        return rng.choice(args)
    if kind == "uniform":
        return rng.uniform(float(args[0]), float(args[1]))
    if kind == "loguniform":
        lo, hi = math.log(float(args[0])), math.log(float(args[1]))
        return float(f"{math.exp(rng.uniform(lo, hi)):.3g}")
    if kind == "randint":
        return rng.randrange(int(args[0]), int(args[1]))
    raise AssertionError(kind)


def points(space: dict, num_samples: int, seed: int = 0) -> list[dict]:
    """Every grid combination, each with ``num_samples`` random draws of the other keys."""
    check_space(space)
    grid_keys = [k for k, v in space.items() if isinstance(v, dict) and "grid" in v]
    combos = list(itertools.product(*(space[k]["grid"] for k in grid_keys))) or [()]
    rng = random.Random(seed)
    out = []
    for combo in combos:
        for _ in range(num_samples):
            point = {k: _draw(v, rng) for k, v in space.items() if k not in grid_keys}
            out.append({**dict(zip(grid_keys, combo)), **point})
    return out


def apply(base: dict, point: dict) -> dict:
    """The training config dict of one point: ``base`` with the point's values."""
    cfg = {**base, "model_set": list(base.get("model_set") or [])}
    for key, value in point.items():
        if key in MODEL_PARAMS or key.startswith("model_set."):
            name = key.split(".", 1)[-1]
            cfg["model_set"] = [p for p in cfg["model_set"] if not p.startswith(f"{name}=")]
            cfg["model_set"].append(f"{name}={value}")
        else:
            cfg[key] = value
    return cfg
