"""Check data/messages/windows-l10n.json and print what it covers.

    python scripts/windows_l10n.py [--kb DIR]

The file holds Windows' own text for Windows Sockets codes in other display languages, as
Windows' FormatMessage gives it and as Python (`[WinError N] …`), .NET (`SocketException
(N): …`), Rust (`… (os error N)`) and Docker print it. No package on a Linux machine ships these
texts, so each one was found quoted verbatim in a public thread, and the thread is its source.

How an entry is added (the procedure that produced the file):
1. search the stored issue threads (the project's `search` tool, corpus `issues` or `pages`)
   for the code with the wording in the language, e.g. `[WinError 10061] 対象のコンピューター…`;
2. keep a text only when a thread shows it verbatim after the code (`[WinError N]`,
   `SocketException (N)`, `(os error N)`), so the code names which message it is;
3. add {code, lang, text, source: the thread's URL}; never translate one yourself: a code and
   language without a quoted text stays missing. A text found with `find_string` (which names a
   file by its index id, not its URL) cites Microsoft's localized SQL Server error page where that
   page quotes the same text, else a GitHub code search for the exact text, and keeps the id of the
   file that shows it beside its code as `index_id` (open it with `read_file`). Machine-translated
   documentation is no source on its own: its wording can differ from what Windows prints.

This script checks every item (a known WSA code with an errno note, a language from the list,
a public http(s) URL, no duplicate) and prints the coverage: which codes each language has,
and how many (code, language) pairs are still missing. Exit status 1 if an item is wrong.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILE = ROOT / "data" / "messages" / "windows-l10n.json"
LANGS = ("zh-CN", "zh-TW", "ja", "ko", "de", "fr", "es", "pt-BR", "ru", "it", "pl")  # those the issue asks for
EXTRA = ("nl",)  # found on the way: kept, not counted in the coverage
# the WSA codes people meet on a TCP socket, each mapping to a kb/errno entry
CODES = (10004, 10013, 10024, 10035, 10048, 10049, 10050, 10051, 10052, 10053, 10054, 10055,
         10057, 10058, 10060, 10061, 10065)


def windows_numbers(kb: Path) -> dict[int, str]:
    """WSA code -> errno name, from the `windows:` number in each kb/errno note's front matter."""
    numbers = {}
    for path in sorted((kb / "errno").glob("*.md")):
        head = path.read_text(encoding="utf-8").split("---\n", 2)[1]
        m = re.search(r"\bwindows: (\d+)", head)
        if m:
            numbers[int(m.group(1))] = path.stem
    return numbers


def check(items: list[dict], known: dict[int, str]) -> list[str]:
    problems, seen = [], set()
    for i, item in enumerate(items):
        where = f"messages[{i}]"
        if item.get("code") not in known:
            problems.append(f"{where}: code {item.get('code')} is no Windows number of an errno note")
        if item.get("lang") not in LANGS + EXTRA:
            problems.append(f"{where}: language {item.get('lang')!r} is not one of {', '.join(LANGS + EXTRA)}")
        if not isinstance(item.get("text"), str) or not item["text"].strip():
            problems.append(f"{where}: no text")
        if not re.match(r"https?://\S+$", str(item.get("source", ""))):
            problems.append(f"{where}: source {item.get('source')!r} is not a URL")
        key = (item.get("code"), item.get("lang"))
        if key in seen:
            problems.append(f"{where}: a second text for {key}")
        seen.add(key)
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kb", type=Path, default=ROOT / "kb")
    args = parser.parse_args()
    items = json.loads(FILE.read_text(encoding="utf-8"))["messages"]
    known = windows_numbers(args.kb)
    problems = check(items, known)
    for p in problems:
        print(f"{FILE.name}: {p}", file=sys.stderr)
    have = {(m["code"], m["lang"]) for m in items}
    for lang in LANGS:
        codes = [c for c in CODES if (c, lang) in have]
        print(f"{lang:<6} {len(codes):>2}/{len(CODES)}  " + " ".join(f"{c} {known.get(c, '?')}" for c in codes))
    missing = len(CODES) * len(LANGS) - len(have & {(c, lang) for c in CODES for lang in LANGS})
    print(f"{len(items)} texts; {missing} of {len(CODES) * len(LANGS)} (code, language) pairs have no quoted text yet")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
