"""Draft the fact part of errno and signal notes from this machine's primary sources.

    python scripts/draft_notes.py [--bsd FILE.json] kb/

Writes kb/errno/<NAME>.md and kb/signal/<NAME>.md for codes that have no note
yet, with the numbers, messages and actions filled from the kernel headers,
glibc and signal(7), and the prose left as TODO for a writer (the linter
rejects TODO, so a draft cannot ship by accident). Existing notes are never
touched. The darwin/freebsd tables come from a JSON file of name -> number
taken from the xnu and FreeBSD errno.h headers, since this machine has no
copy of them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tcpkb import sources  # noqa: E402

ALIASES = {"EWOULDBLOCK": "EAGAIN", "EDEADLOCK": "EDEADLK", "ENOTSUP": "EOPNOTSUPP"}


def flow(mapping: dict) -> str:
    return "{" + ", ".join(f"{k}: {'null' if v is None else v}" for k, v in mapping.items()) + "}"


def draft_errno(out: Path, bsd: dict) -> int:
    generic = sources.linux_errnos()
    abis = {abi: sources.linux_errnos(abi) for abi in sources.CROSS_ROOTS}
    wsa = sources.windows_wsa()
    written = 0
    for name, number in sorted(generic.items(), key=lambda kv: kv[1]):
        if name in ALIASES:
            continue
        path = out / "errno" / f"{name}.md"
        if path.exists():
            continue
        aliases = [a for a, target in ALIASES.items() if target == name]
        numbers: dict = {}
        for abi, table in abis.items():
            if table.get(name) != number:
                numbers[abi] = table.get(name)
        for osname in ("darwin", "freebsd"):
            value = bsd.get(osname, {}).get(name)
            if value is None:
                value = next((bsd.get(osname, {}).get(a) for a in aliases if a in bsd.get(osname, {})), None)
            if value is not None:
                numbers[osname] = value
        win = wsa.get("WSA" + name) or next((wsa.get("WSA" + a) for a in aliases if "WSA" + a in wsa), None)
        if win:
            numbers["windows"] = win
        message = json.dumps(os.strerror(number))  # a JSON string is a YAML string, colons and all
        lines = ["---", f"name: {name}", f"title: {message}", f"number: {number}", f"message: {message}"]
        if aliases:
            lines.append(f"aliases: [{', '.join(aliases)}]")
        if numbers:
            lines.append(f"numbers: {flow(numbers)}")
        lines += ["summary: TODO", "summary_zh: TODO", "---", "## Meaning", "", "TODO", ""]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines))
        written += 1
    return written


def draft_signals(out: Path) -> int:
    generic = sources.linux_signals()
    abis = {abi: sources.linux_signals(abi) for abi in sources.CROSS_ROOTS}
    man = sources.signal_man_table()
    written = 0
    seen_numbers = {}
    for name, number in sorted(generic.items(), key=lambda kv: kv[1]):
        if number in seen_numbers or name in ("SIGRTMIN", "SIGRTMAX"):
            continue
        seen_numbers[number] = name
        path = out / "signal" / f"{name}.md"
        if path.exists():
            continue
        numbers = {abi: t.get(name) for abi, t in abis.items() if t.get(name) != number}
        lines = ["---", f"name: {name}", f"title: {json.dumps(signal.strsignal(number))}", f"number: {number}",
                 f"action: {json.dumps(man.get(name, {}).get('action', 'TODO'))}",
                 f"standard: {json.dumps(man.get(name, {}).get('standard', 'TODO'))}"]
        if numbers:
            lines.append(f"numbers: {flow(numbers)}")
        lines += ["summary: TODO", "summary_zh: TODO", "---", "## Meaning", "", "TODO", ""]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines))
        written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kb", type=Path)
    parser.add_argument("--bsd", type=Path, help="JSON {darwin: {NAME: n}, freebsd: {NAME: n}}")
    args = parser.parse_args()
    bsd = json.loads(args.bsd.read_text()) if args.bsd else {}
    print(f"errno: {draft_errno(args.kb, bsd)} drafted; signal: {draft_signals(args.kb)} drafted")


if __name__ == "__main__":
    main()
