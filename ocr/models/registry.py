"""Named model presets over keyword-only factories, one idiom for every model family.

    RECOGNIZERS = Registry("recognizer")

    @RECOGNIZERS.register("crnn")                      # a factory, registered as is
    def crnn(*, num_classes, height=32, backbone_channels=512, hidden=256): ...
    RECOGNIZERS.register("tiny_crnn", crnn, backbone_channels=32, hidden=16)   # a preset of it

    model = RECOGNIZERS.create("crnn", num_classes=11, hidden=128)
    model.arch        # {"name": "crnn", "num_classes": 11, "height": 32, ..., "hidden": 128}
    same = RECOGNIZERS.create(**model.arch)            # the same architecture

``create`` binds the factory's signature with the preset's values, then the caller's, fills
in the defaults and records every argument in ``model.arch``, so they must be JSON-able
(tuples are recorded as lists: factories must accept either).
"""

from __future__ import annotations

import copy
import inspect
from typing import Callable

from torch import nn

Factory = Callable[..., nn.Module]


def _jsonable(value, where: str):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _jsonable(v, where) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"architecture parameter {where!r} must be JSON-able, found {type(value).__name__}")


class Registry:
    """Presets ``name -> (factory, preset values)`` of one model family; ``kind`` names the
    family in messages ("recognizer", "detector", ...)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._presets: dict[str, tuple[Factory, dict]] = {}

    def register(self, name: str, factory: Factory | None = None, **preset):
        """``@register(name)`` on a keyword-only factory, or ``register(name, factory, **preset)``:
        ``name`` builds ``factory(**preset, **kwargs)``. Returns the factory."""
        if factory is None:
            return lambda fn: self.register(name, fn, **preset)
        if name in self._presets:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        params = inspect.signature(factory).parameters
        positional = [p for p, v in params.items() if v.kind is not inspect.Parameter.KEYWORD_ONLY]
        if positional:
            raise ValueError(f"{self.kind} {name!r}: the factory's parameters must be keyword-only, "
                             f"found {positional}")
        unknown = sorted(set(preset) - set(params))
        if unknown:
            raise ValueError(f"{self.kind} {name!r}: the factory has no parameter(s) {unknown}: "
                             f"expected some of {list(params)}")
        for k, v in preset.items():
            _jsonable(v, k)
        self._presets[name] = (factory, copy.deepcopy(preset))
        return factory

    def names(self) -> list[str]:
        return sorted(self._presets)

    def __contains__(self, name: object) -> bool:
        return name in self._presets

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"

    def _get(self, name: str) -> tuple[Factory, dict]:
        if name not in self._presets:
            raise ValueError(f"unknown {self.kind} {name!r}: expected one of {', '.join(self.names())}")
        factory, preset = self._presets[name]
        return factory, copy.deepcopy(preset)

    def defaults(self, name: str) -> dict:
        """Preset ``name``'s parameter values: the factory's defaults overlaid with the preset's."""
        factory, preset = self._get(name)
        params = inspect.signature(factory).parameters.values()
        return {**{p.name: copy.deepcopy(p.default) for p in params if p.default is not p.empty}, **preset}

    def create(self, name: str, **kwargs) -> nn.Module:
        """Build preset ``name`` with ``kwargs`` overriding its values; sets ``model.arch``."""
        factory, preset = self._get(name)
        sig = inspect.signature(factory)
        unknown = sorted(set(kwargs) - set(sig.parameters))
        if unknown:
            raise ValueError(f"unknown option(s) for {self.kind} {name!r}: no parameter(s) {unknown}; "
                             f"expected some of {list(sig.parameters)}")
        try:
            bound = sig.bind(**{**preset, **kwargs})
        except TypeError as e:
            raise TypeError(f"{self.kind} {name!r}: {e}") from None
        bound.apply_defaults()
        arch = {"name": name, **{k: _jsonable(v, k) for k, v in bound.arguments.items()}}
        model = factory(**bound.arguments)
        model.arch = arch
        return model


def arch_of(model: nn.Module) -> dict:
    """A copy of ``model.arch``: what ``<registry>.create(**arch)`` rebuilds the model from."""
    arch = getattr(model, "arch", None)
    if arch is None:
        raise ValueError(f"this {type(model).__name__} was assembled by hand: only models built by a "
                         f"registry's create() carry an arch")
    return copy.deepcopy(arch)
