"""The closed grammar of a note: which kinds exist, their fields and sections.

kb/README.md documents the same grammar for writers; a test keeps the two in
step. Types are checked by `check_type`, so a new field needs one line here.
"""

from __future__ import annotations

from dataclasses import dataclass

LINUX_ABIS = ("alpha", "mips", "sparc", "parisc", "powerpc")
OTHER_OSES = ("darwin", "freebsd", "windows")


@dataclass(frozen=True)
class Field:
    type: str  # str, int, bool, str_list, str_or_null, value_or_null, numbers, alias_numbers, transitions, combinations, errors
    required: bool = False
    choices: tuple = ()
    keys: tuple = ()  # allowed keys of a `numbers` mapping


@dataclass(frozen=True)
class Kind:
    name: str
    fields: dict[str, Field]
    sections: tuple[str, ...]
    required_sections: tuple[str, ...]
    # Sections also required when the boolean `socket` field is true.
    socket_sections: tuple[str, ...] = ()
    # The field whose value must be unique among entries of the kind.
    unique: str | None = None
    title_hint: str = ""


SYSCTL_TYPES = ("integer", "boolean", "mode", "vector", "string", "bitmap")
SOCKOPT_LEVELS = ("SOL_SOCKET", "IPPROTO_TCP", "IPPROTO_IP", "IPPROTO_IPV6", "flags")

COMMON = {
    "name": Field("str", required=True),
    "title": Field("str", required=True),
    "summary": Field("str", required=True),
    "summary_zh": Field("str", required=True),
    "aliases": Field("str_list"),
    "seen_as": Field("str_list"),
    "seen_as_deadline": Field("str_list"),
    "related": Field("str_list"),
}

FULL = ("Meaning", "Causes", "What to do", "How to see it")

KINDS: dict[str, Kind] = {
    "errno": Kind(
        "errno",
        {
            **COMMON,
            "number": Field("int", required=True),
            "message": Field("str", required=True),
            "numbers": Field("numbers", keys=LINUX_ABIS + OTHER_OSES),
            "alias_numbers": Field("alias_numbers", keys=LINUX_ABIS + OTHER_OSES),
            "socket": Field("bool"),
            "internal": Field("bool"),
        },
        sections=FULL,
        required_sections=("Meaning",),
        socket_sections=FULL,
        unique="number",
    ),
    "signal": Kind(
        "signal",
        {
            **COMMON,
            "number": Field("int", required=True),
            "numbers": Field("numbers", keys=LINUX_ABIS),
            "action": Field("str", required=True, choices=("Term", "Core", "Ign", "Stop", "Cont")),
            "standard": Field("str", required=True, choices=("P1990", "P2001", "-")),
            "socket": Field("bool"),
        },
        sections=FULL,
        required_sections=("Meaning",),
        socket_sections=FULL,
        unique="number",
    ),
    "state": Kind(
        "state",
        {
            **COMMON,
            "number": Field("int", required=True),
            "hex": Field("str", required=True),
            "rfc": Field("str_or_null", required=True),
            "ss": Field("str_or_null", required=True),
            "netstat": Field("str_or_null", required=True),
            "side": Field("str", required=True,
                          choices=("client", "server", "both", "closer", "passive-closer", "none")),
            "transitions": Field("transitions", required=True),
        },
        sections=("Meaning", "How it is entered", "How it is left", "When it piles up", "How to see it"),
        required_sections=("Meaning", "How it is entered", "How it is left", "How to see it"),
        unique="number",
    ),
    "flag": Kind(
        "flag",
        {
            **COMMON,
            "bit": Field("int", required=True),
            "letter": Field("str", required=True),
            "rfc": Field("str", required=True),
            "combinations": Field("combinations"),
        },
        sections=("Meaning", "When the kernel sets it", "How to see it"),
        required_sections=("Meaning", "When the kernel sets it", "How to see it"),
        unique="bit",
    ),
    "claim": Kind(
        "claim",
        {
            **COMMON,
            "verdict": Field("str", required=True, choices=("confirmed", "refuted", "depends")),
        },
        sections=("The claim", "What the kernel does", "What to do"),
        required_sections=("The claim", "What the kernel does"),
    ),
    "sysctl": Kind(
        "sysctl",
        {
            **COMMON,
            "type": Field("str", required=True, choices=SYSCTL_TYPES),
            "unit": Field("str_or_null"),
            "range": Field("str_or_null"),
            "default": Field("value_or_null", required=True),
            "computed": Field("str_or_null"),
            "per_netns": Field("bool", required=True),
            "inherited": Field("bool"),
            "noop_since": Field("str_or_null"),
            "removed_in": Field("str_or_null"),
        },
        sections=("Meaning", "Values", "Traps", "Where the docs differ", "What to do", "How to see it"),
        required_sections=("Meaning", "What to do"),
    ),
    "sockopt": Kind(
        "sockopt",
        {
            **COMMON,
            "level": Field("str", required=True, choices=SOCKOPT_LEVELS),
            "number": Field("int", required=True),
            "numbers": Field("numbers", keys=LINUX_ABIS),
            "value": Field("str", required=True),
            "access": Field("str", required=True, choices=("get", "set", "get and set", "per call")),
            "default": Field("value_or_null"),
            "default_from": Field("str_or_null"),
        },
        sections=("Meaning", "Pitfalls", "How to see it"),
        required_sections=("Meaning", "Pitfalls"),
    ),
    "call": Kind(
        "call",
        {
            **COMMON,
            "synopsis": Field("str", required=True),
            "man": Field("str", required=True),
            "errors": Field("errors"),
        },
        sections=("Meaning", "What it does to the connection", "Pitfalls", "How to see it"),
        required_sections=("Meaning", "What it does to the connection"),
    ),
}

TRANSITION_KEYS = {"to": True, "event": True, "send": False, "side": False, "rfc": False}
COMBINATION_KEYS = {"flags": True, "name": True, "meaning": True}
ERROR_KEYS = {"errno": True, "when": True}


def slug(section: str) -> str:
    """'What to do' -> 'what-to-do': the stable key of a section."""
    return section.lower().replace(" ", "-")


def check_type(f: Field, value) -> str | None:
    """Return what is wrong with `value` for field `f`, or None if it fits."""
    t = f.type
    if t == "str":
        if not isinstance(value, str) or not value.strip():
            return "must be a non-empty string"
        if f.choices and value not in f.choices:
            return f"must be one of {', '.join(f.choices)}"
    elif t == "str_or_null":
        if value is not None and (not isinstance(value, str) or not value.strip()):
            return "must be a string or null"
    elif t == "value_or_null":  # a value as a file prints it: may be empty, never a number
        if value is not None and not isinstance(value, str):
            return "must be a quoted string (\"\" for an empty value) or null"
    elif t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
    elif t == "bool":
        if not isinstance(value, bool):
            return "must be true or false"
    elif t == "str_list":
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            return "must be a list of non-empty strings"
    elif t == "numbers":
        return _check_numbers(value, f.keys)
    elif t == "alias_numbers":
        if not isinstance(value, dict):
            return "must map alias names to {platform: number}"
        for alias, numbers in value.items():
            if problem := _check_numbers(numbers, f.keys):
                return f"{alias}: {problem}"
    elif t in ("transitions", "combinations", "errors"):
        keys = {"transitions": TRANSITION_KEYS, "combinations": COMBINATION_KEYS, "errors": ERROR_KEYS}[t]
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            return "must be a list of mappings"
        for item in value:
            for key, required in keys.items():
                if required and not item.get(key):
                    return f"each item needs `{key}`"
            if unknown := set(item) - set(keys):
                return f"unknown key {sorted(unknown)[0]!r} (allowed: {', '.join(keys)})"
            if t == "transitions" and "rfc" in item and not isinstance(item["rfc"], bool):
                return "`rfc` must be true or false"
    return None


def _check_numbers(value, keys: tuple) -> str | None:
    if not isinstance(value, dict):
        return "must be a mapping of platform to number"
    for k, v in value.items():
        if k not in keys:
            return f"unknown platform {k!r} (allowed: {', '.join(keys)})"
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            return f"{k}: must be an integer or null"
    return None
