"""Model registry: a name -> factory map, so a checkpoint can name what rebuilds it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

Factory = Callable[..., nn.Module]
F = TypeVar("F", bound=Factory)

_FACTORIES: dict[str, Factory] = {}
# Built-in models register on import; importing lazily keeps `import timbrespace.models` light.
_BUILTIN_MODULES = {
    "patch-vae": "timbrespace.models.patch_vae",
    "timbre-gmvae": "timbrespace.models.timbre_gmvae",
    "timbre-map": "timbrespace.models.timbre_map",
}


def register(name: str) -> Callable[[F], F]:
    """Class/function decorator: make ``create(name, **config)`` call the decorated factory."""

    def decorate(factory: F) -> F:
        existing = _FACTORIES.get(name)
        if existing is not None and existing is not factory:
            raise ValueError(f"model name {name!r} is already registered to {existing!r}")
        _FACTORIES[name] = factory
        return factory

    return decorate


def names() -> list[str]:
    """Every model name that :func:`create` accepts."""
    return sorted(set(_FACTORIES) | set(_BUILTIN_MODULES))


def get(name: str) -> Factory:
    """The factory registered as ``name``; LookupError lists the known names."""
    if name not in _FACTORIES and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
    try:
        return _FACTORIES[name]
    except KeyError:
        raise LookupError(f"unknown model {name!r}; expected one of: {', '.join(names())}") from None


def create(name: str, **config: Any) -> nn.Module:
    """Build model ``name`` from its constructor keyword arguments."""
    return get(name)(**config)
