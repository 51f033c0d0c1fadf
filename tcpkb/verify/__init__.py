"""Proof: scenarios that make the running kernel show a behaviour, and the runner.

A scenario is a small function named for what it shows, registered with
`@scenario(claim=..., proves=[...])`. Its claim is one sentence; `proves` are
the entry ids it reproduces. A *check* (`level="checked"`) instead compares a
batch of entries' facts with the live system and returns one verdict per entry.
The modules in `tcpkb/verify/scenarios/` are imported on demand.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass, field
from collections.abc import Callable


@dataclass(frozen=True)
class Scenario:
    name: str
    claim: str
    proves: tuple[str, ...]
    fn: Callable
    module: str
    level: str = "reproduced"  # or "checked"
    # "netns", "tun", and what the kernel must have: "sysctl:<name>", "btf:<name>" (see needs.py)
    needs: frozenset = frozenset()
    timeout: float = 5.0
    verdicts: dict = field(default_factory=dict)  # claim:<slug> -> confirmed|refuted|depends
    kind: str | None = None  # a check: the kind of entry it checks


REGISTRY: dict[str, Scenario] = {}


def scenario(*, claim: str, proves: list[str], needs: tuple = ("netns",), timeout: float = 5.0,
             verdicts: dict | None = None, level: str = "reproduced", kind: str | None = None):
    def register(fn):
        name = fn.__name__
        if name in REGISTRY:
            raise ValueError(f"two scenarios named {name}")
        REGISTRY[name] = Scenario(name, " ".join(claim.split()), tuple(proves), fn,
                                  fn.__module__.rsplit(".", 1)[-1], level, frozenset(needs),
                                  timeout, dict(verdicts or {}), kind)
        return fn
    return register


def check(*, kind: str, claim: str, timeout: float = 10.0, needs: tuple = ()):
    """A check of every entry of `kind`: returns [{'entry', 'ok', 'expected', 'observed'}…]."""
    return scenario(claim=claim, proves=[], needs=needs, timeout=timeout, level="checked", kind=kind)


def all_scenarios() -> dict[str, Scenario]:
    from . import scenarios as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    return dict(sorted(REGISTRY.items()))


def proof_records(shipped_checked: bool = False):
    """The scenario catalogue and every results file found, as the build loads them. Every
    stored result is validated against the trace schema first: a results file that does not
    conform stops the build (ValueError naming the file, the scenario and what is wrong).
    Files whose content passed before are not validated again (see _validated), and with
    `shipped_checked` (a lookup's first-use build) neither are the results shipped with
    tcpkb: the test suite validated them before they shipped (tests/test_verify_trace.py)."""
    from ..build.proof import Proof
    from . import results
    from .trace_schema import validate_result

    catalog = [{"name": s.name, "module": s.module, "level": s.level, "claim": s.claim,
                "needs": " ".join(sorted(s.needs)), "timeout_s": s.timeout, "proves": list(s.proves),
                "verdicts": dict(s.verdicts), "source": source_of(s.fn)}
               for s in all_scenarios().values()]
    loaded = results.load_all()
    known, digests = _validated()
    shipped = set(paths_shipped_results()) if shipped_checked else set()
    if not digests <= known:
        for r in (r for r in loaded if r["file"] not in shipped):
            stored = {k: v for k, v in r.items() if k != "file"}  # `file` is added by the loader
            if problems := validate_result(stored):
                raise ValueError(f"verification results {r['file']}: {r.get('scenario')} on {r.get('kernel')} "
                                 f"does not match the trace schema: {problems[0]}"
                                 + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        if not shipped_checked:  # only what was validated here is remembered as validated
            _remember_validated(digests)
    return Proof(catalog, loaded)


def source_of(fn: Callable) -> str | None:
    """A scenario's Python source, its decorator included, for the pages that show it."""
    import inspect
    import textwrap

    try:
        return textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):  # no source shipped (a zipped or compiled-only install)
        return None


def paths_shipped_results() -> list[str]:
    """The names of the results files that ship with tcpkb (the package's, or the checkout's)."""
    from .. import paths

    folder = paths.results_dirs()[0] if not os.environ.get("TCPKB_RESULTS") else None
    return sorted(f for f in os.listdir(folder) if f.endswith(".json")) if folder and os.path.isdir(folder) else []


def _validated() -> tuple[set[str], set[str]]:
    """(digests of results files that passed the schema before, digests of the files now).

    Validating the shipped results costs more than the rest of a first build; a file's
    content digest (and the schema's) stands for a validation already done."""
    import hashlib

    from .. import paths
    from .trace_schema import SCHEMA_PATH

    def digest(path) -> str:
        with open(path, "rb") as f:
            return hashlib.blake2b(f.read(), digest_size=16).hexdigest()

    schema = digest(SCHEMA_PATH)
    now = {f"{schema}:{digest(p)}" for p in paths.result_files()}
    try:
        with open(os.path.join(paths.cache_dir(), "validated-results"), encoding="ascii") as f:
            known = set(f.read().split())
    except (OSError, ValueError):
        known = set()
    return known, now


def _remember_validated(digests: set[str]) -> None:
    from .. import paths

    known, _ = _validated()
    try:  # a cache that cannot be written only means validating again next time
        paths.write_atomic(os.path.join(paths.cache_dir(), "validated-results"),
                           "\n".join(sorted(known | digests)) + "\n")
    except OSError:
        pass
