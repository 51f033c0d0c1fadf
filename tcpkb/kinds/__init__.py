"""The kind registry: one module per kind of entry, in the order the faces list them.

A new kind is a module here (a `Kind` subclass and its `KIND` instance), one line in
`MODULES`, its notes in kb/<kind>/, an optional template partial and its tests; lint,
build, lookups, the CLI and both web faces iterate `KINDS`. A kind's module is imported
the first time it is asked for, so a lookup loads only the kind it reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module

from .base import BadQuery, Hit, Kind, NotFound, slug  # noqa: F401  (the registry's public names)

MODULES = ("errno", "signal", "state", "flag", "sysctl", "sockopt", "call", "counter", "drop", "rst",
           "resolver", "claim")


class Registry(Mapping):
    """name -> Kind, in MODULES order, each module imported on first use."""

    def __init__(self, names: tuple[str, ...]):
        self._names = names
        self._loaded: dict[str, Kind] = {}

    def __getitem__(self, name: str) -> Kind:
        if name not in self._loaded:
            if name not in self._names:
                raise KeyError(name)
            self._loaded[name] = import_module(f"{__name__}.{name}").KIND
        return self._loaded[name]

    def __contains__(self, name) -> bool:
        return name in self._names

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


KINDS: Mapping[str, Kind] = Registry(MODULES)
