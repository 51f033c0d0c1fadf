"""This machine's sysctl values, read against the notes' defaults.

`tcpkb sysctl` and `tcpkb sysctl --diff` read /proc/sys here. A default the
note cannot state (it is computed from memory or the hash table size) is read
from a fresh network namespace, made by a short-lived child process, which is
where the kernel shows its own default for a per-namespace knob. Nothing here
ever writes a sysctl.
"""

from __future__ import annotations

import os

SECRET = {"net.ipv4.tcp_fastopen_key"}  # a live key is not something to print


def path_of(name: str) -> str:
    return "/proc/sys/" + name.replace(".", "/")


def read(name: str) -> tuple[str | None, str | None]:
    """(value, None), or (None, why it could not be read). Whitespace runs become one space."""
    try:
        with open(path_of(name)) as f:
            value = " ".join(f.read().split())
    except FileNotFoundError:
        return None, "not on this kernel"
    except PermissionError:
        return None, "not readable by this user"
    except OSError as e:
        return None, e.strerror or str(e)
    if name in SECRET:
        return "(hidden: a secret key)", None
    return value, None


# A new namespace's computed defaults depend on the namespace it is made from (its
# tcp_child_ehash_entries), so they are remembered per namespace of this process.
_FRESH: dict[tuple, dict[str, str]] = {}


def fresh_namespace_values(names: list[str], timeout: float = 2.0) -> dict[str, str]:
    """The values a brand-new network namespace starts with; {} when one cannot be made.

    Remembered while this process stays in its namespace: `tcpkb doctor --all` compares every
    namespace against them, and one child namespace answers for all."""
    from .netns import IsolationError, in_new_namespace

    wanted = [n for n in names if n not in SECRET]
    if not wanted:
        return {}
    try:
        here = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        here = None
    if (key := (here, *wanted)) in _FRESH and here is not None:
        return dict(_FRESH[key])

    def values() -> dict[str, str]:
        return {n: v for n in wanted if (v := read(n)[0]) is not None}

    try:
        _FRESH[key] = in_new_namespace(values, timeout, own_hash_table=False)
    except IsolationError:
        return {}  # not remembered: the next call may be allowed to make one
    return dict(_FRESH[key])


def read_only(name: str) -> bool:
    """A file nobody can write reports the kernel's state (tcp_ehash_entries), not a setting."""
    try:
        return not os.stat(path_of(name)).st_mode & 0o222
    except OSError:
        return False


def compare(sysctl: dict, value: str | None, fresh: dict[str, str]) -> dict:
    """The live state of one knob against its default: value, default, where that came from, differs."""
    name = sysctl["name"]
    default, source = _default_here(sysctl), "note"
    if default is None and name in fresh and not sysctl.get("inherited"):
        default, source = fresh[name], "fresh namespace"
    if value is None or default is None or name in SECRET or read_only(name):
        differs = None  # nothing to compare: say so rather than guess
    else:
        differs = value.split() != default.split()
    return {"value": value, "default": default, "default_source": source if default is not None else None,
            "differs": differs}


def _default_here(sysctl: dict) -> str | None:
    """The note's default for the running kernel (a note may give one per kernel range)."""
    import platform

    from ..kinds.base import value_on

    return value_on(sysctl, "default", platform.release())


def other_kernels(sysctl: dict) -> list[dict]:
    """The kernels whose default differs from this one's: [{value, kernels}] from the note's
    ranges and the checks' readings, for `tcpkb sysctl` to say so."""
    from ..kinds.base import kernel_rows

    here = _default_here(sysctl)
    return [r for r in kernel_rows(sysctl, "default") if r["value"] != here]


def with_live(entry: dict) -> dict:
    """A sysctl entry with `live`: this machine's value against the default."""
    value, why = read(entry["name"])
    fresh = {}
    if entry["default"] is None and entry["per_netns"] and not entry["inherited"] and value is not None:
        fresh = fresh_namespace_values([entry["name"]])
    live = compare(entry, value, fresh)
    if why:
        live["why"] = why
    if others := other_kernels(entry):
        live["other_kernels"] = others
    return {**entry, "live": live}


def knob_names(conn) -> list[str]:
    """The sysctls the knowledge base can compare against a default."""
    return [r[0] for r in conn.execute("select name from sysctls where removed_in is null order by name")]


def knob_entries(conn) -> list[dict]:
    """The knowledge base's entries for the knobs it can compare, in name order."""
    from ..query.lookup import entry

    return [entry(conn, r[0]) for r in conn.execute(
        "select id from sysctls where removed_in is null order by name")]


def diff(conn, values: dict[str, tuple[str | None, str | None]] | None = None,
         knobs: list[dict] | None = None) -> dict:
    """Every knob in the knowledge base whose value differs from its default.

    `values` ({name: (value, why not)}, as read() gives them) are values read elsewhere: in
    another network namespace or in a saved `sysctl -a`; without it they are read here.
    `knobs` (knob_entries()) saves looking them up again when many namespaces are compared.
    """
    if knobs is None:
        knobs = knob_entries(conn)
    if values is None:
        values = {k["name"]: read(k["name"]) for k in knobs}
    values = {k["name"]: values.get(k["name"], (None, "not recorded")) for k in knobs}
    computed = [k["name"] for k in knobs if k["default"] is None and k["per_netns"]
                and not k["inherited"] and values[k["name"]][0] is not None]
    fresh = fresh_namespace_values(computed) if computed else {}
    differs, not_compared = [], []
    for k in knobs:
        value, why = values[k["name"]]
        c = compare(k, value, fresh)
        if c["differs"] is None:
            not_compared.append({"id": k["id"], "why": why or (
                "a secret" if k["name"] in SECRET else "read-only" if read_only(k["name"])
                else "a new namespace copies this machine's value" if k["inherited"]
                else "the default depends on the machine")})
        elif c["differs"]:
            differs.append({"id": k["id"], "name": k["name"], "value": value, "default": c["default"],
                            "default_source": c["default_source"], "summary": k["summary"],
                            "advice": k["sections"].get("what-to-do", "")})
    return {"differs": differs, "compared": len(knobs) - len(not_compared), "not_compared": not_compared}
