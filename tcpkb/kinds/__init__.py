"""The kind registry: one module per kind of entry, in the order the faces list them.

A new kind is a module here (a `Kind` subclass and its `KIND` instance), one line in
`MODULES`, its notes in kb/<kind>/, an optional template partial and its tests; lint,
build, lookups, the CLI and both web faces iterate `KINDS`. Cheap to import: the lookup
path loads it.
"""

from __future__ import annotations

from importlib import import_module

from .base import BadQuery, Hit, Kind, NotFound, slug  # noqa: F401  (the registry's public names)

MODULES = ("errno", "signal", "state", "flag", "sysctl", "sockopt", "call", "claim")

KINDS: dict[str, Kind] = {name: import_module(f"{__name__}.{name}").KIND for name in MODULES}
