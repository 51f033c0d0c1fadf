"""Regenerate data/messages/*.json from this machine's primary sources.

    python scripts/extract_messages.py [--out DIR] [--kb DIR]

Writes four files (default DIR: data/messages/):

- glibc-l10n.json: glibc's strerror() text for the socket errnos in every
  language Debian's libc-l10n ships (/usr/share/locale/<lang>/LC_MESSAGES/libc.mo),
  kept only where the translation differs from the English text.
- glibc-gai-l10n.json: glibc's gai_strerror() text for every kb/resolver note
  (getaddrinfo's EAI_* codes) in the same languages, for the messages explain reads (not
  glibc's "Unknown error" fallback, nor a text of fewer than three words).
- musl.json: musl's strerror() text for the same errnos where it differs from
  glibc's, read by running a program built with musl-gcc (package musl-tools).
- libuv-windows.json: the negative codes libuv uses on Windows (the `#else`
  branch of /usr/include/uv/errno.h, package libuv1-dev) for every errno that
  has a kb/errno note; Node.js prints these as `errno: -4077` on Windows.

Each file is {"_source": "...", "messages": {...}}. The English texts, numbers
and the socket flag come from the kb/errno notes' front matter. A missing
source ends the run with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import gettext
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KB = ROOT / "kb"
OUT = ROOT / "data" / "messages"
LOCALE_DIR = Path("/usr/share/locale")
UV_ERRNO_H = Path("/usr/include/uv/errno.h")
MUSL_MAX = 200

MUSL_PROGRAM = r"""
#include <stdio.h>
#include <string.h>
int main(void) {
    for (int i = 0; i <= %d; i++)
        printf("%%d\t%%s\n", i, strerror(i));
    return 0;
}
""" % MUSL_MAX


class SourceMissing(Exception):
    """A primary source this script reads is not installed or not readable."""


# ---------------------------------------------------------------- inputs


def package_version(package: str) -> str:
    """The installed version of a Debian package, from dpkg-query."""
    if shutil.which("dpkg-query") is None:
        raise SourceMissing("dpkg-query not found: cannot name the version of " + package)
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package],
        capture_output=True, text=True, timeout=30, check=False,
    )
    version = proc.stdout.strip()
    if proc.returncode != 0 or not version:
        raise SourceMissing(f"package {package} is not installed (apt-get install -y {package})")
    return version


def errno_notes(kb: Path = KB) -> dict[str, dict]:
    """Front matter of every kb/errno note, by name."""
    return notes_of(kb, "errno")


def notes_of(kb: Path, kind: str) -> dict[str, dict]:
    """Front matter of every note of a kind, by name."""
    try:
        import yaml
    except ImportError:
        raise SourceMissing("PyYAML is not importable (pip install pyyaml)") from None
    folder = kb / kind
    paths = sorted(folder.glob("*.md")) if folder.is_dir() else []
    if not paths:
        raise SourceMissing(f"no {kind} notes under {folder}")
    notes = {}
    for path in paths:
        text = path.read_text(encoding="utf-8")
        parts = text.split("---\n", 2)
        if len(parts) < 3 or parts[0] != "":
            raise SourceMissing(f"{path}: no front matter")
        try:
            meta = yaml.safe_load(parts[1])
        except yaml.YAMLError as exc:
            raise SourceMissing(f"{path}: front matter is not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(meta, dict) or "name" not in meta:
            raise SourceMissing(f"{path}: front matter has no name")
        notes[meta["name"]] = meta
    return notes


def socket_errnos(kb: Path = KB) -> dict[str, dict]:
    """The notes with `socket: true`, by name."""
    return {name: meta for name, meta in errno_notes(kb).items() if meta.get("socket") is True}


# ---------------------------------------------------------------- glibc translations


def glibc_l10n(kb: Path = KB, locale_dir: Path = LOCALE_DIR) -> dict:
    version = package_version("libc-l10n")
    catalogs = sorted(locale_dir.glob("*/LC_MESSAGES/libc.mo"))
    if not catalogs:
        raise SourceMissing(f"no libc.mo under {locale_dir} (apt-get install -y libc-l10n)")
    notes = socket_errnos(kb)
    messages: dict[str, dict[str, str]] = {}
    for mo in catalogs:
        lang = mo.parent.parent.name
        try:
            with mo.open("rb") as fh:
                catalog = gettext.GNUTranslations(fh)
        except (OSError, UnicodeDecodeError) as exc:
            raise SourceMissing(f"{mo}: cannot be read ({exc})") from None
        translated = {}
        for name, meta in notes.items():
            english = meta["message"]
            text = catalog.gettext(english)
            if text != english:
                translated[name] = text
        messages[lang] = dict(sorted(translated.items()))
    return {
        "_source": (
            f"Debian libc-l10n {version}: /usr/share/locale/<lang>/LC_MESSAGES/libc.mo, "
            "glibc strerror() text translated with gettext; only texts that differ from English"
        ),
        "messages": dict(sorted(messages.items())),
    }


def resolver_notes(kb: Path = KB) -> dict[str, dict]:
    """Front matter of every kb/resolver note, by name."""
    return notes_of(kb, "resolver")


def glibc_gai_l10n(kb: Path = KB, locale_dir: Path = LOCALE_DIR) -> dict:
    sys.path.insert(0, str(ROOT))
    from tcpkb.kinds.resolver import explain_worthy

    version = package_version("libc-l10n")
    catalogs = sorted(locale_dir.glob("*/LC_MESSAGES/libc.mo"))
    if not catalogs:
        raise SourceMissing(f"no libc.mo under {locale_dir} (apt-get install -y libc-l10n)")
    english = {name: meta["message"] for name, meta in resolver_notes(kb).items()
               if explain_worthy(meta["message"])}
    messages: dict[str, dict[str, str]] = {}
    for mo in catalogs:
        with mo.open("rb") as fh:
            catalog = gettext.GNUTranslations(fh)
        translated = {name: catalog.gettext(text) for name, text in english.items()
                      if catalog.gettext(text) != text}
        if translated:
            messages[mo.parent.parent.name] = dict(sorted(translated.items()))
    return {
        "_source": (
            f"Debian libc-l10n {version}: /usr/share/locale/<lang>/LC_MESSAGES/libc.mo, "
            "glibc gai_strerror() text translated with gettext; only texts that differ from English"
        ),
        "messages": dict(sorted(messages.items())),
    }


# ---------------------------------------------------------------- musl


def musl_strerror() -> dict[int, str]:
    """musl's strerror() for 0..MUSL_MAX, by number, from a program built with musl-gcc."""
    musl_gcc = shutil.which("musl-gcc")
    if musl_gcc is None:
        raise SourceMissing("musl-gcc not found (apt-get install -y musl-tools)")
    with tempfile.TemporaryDirectory(prefix="tcpkb-musl-") as tmp:
        src = Path(tmp) / "strerror.c"
        exe = Path(tmp) / "strerror"
        src.write_text(MUSL_PROGRAM, encoding="ascii")
        build = subprocess.run(
            [musl_gcc, "-static", "-O0", "-o", str(exe), str(src)],
            capture_output=True, text=True, timeout=120, check=False,
        )
        if build.returncode != 0:
            first = (build.stderr.strip().splitlines() or ["no output"])[0]
            raise SourceMissing(f"musl-gcc could not build the strerror program: {first}")
        run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30, check=False)
        if run.returncode != 0:
            raise SourceMissing(f"the musl strerror program exited with status {run.returncode}")
    table = {}
    for line in run.stdout.splitlines():
        number, _, text = line.partition("\t")
        table[int(number)] = text
    if len(table) != MUSL_MAX + 1:
        raise SourceMissing(f"the musl strerror program printed {len(table)} lines, not {MUSL_MAX + 1}")
    return table


def musl(kb: Path = KB) -> dict:
    version = package_version("musl")
    tools = package_version("musl-tools")
    table = musl_strerror()
    messages = {}
    for name, meta in socket_errnos(kb).items():
        text = table.get(meta["number"])
        if text is not None and text != meta["message"]:
            messages[name] = text
    return {
        "_source": (
            f"Debian musl {version} (musl-gcc from musl-tools {tools}): strerror() for 0..{MUSL_MAX}, "
            "numbers from kb/errno (x86-64); only texts that differ from glibc's"
        ),
        "messages": dict(sorted(messages.items())),
    }


# ---------------------------------------------------------------- libuv


_IF = re.compile(r"^#\s*if\s+defined\((E[A-Z0-9]+)\)\s*&&\s*!defined\(_WIN32\)\s*$")
_DEFINE = re.compile(r"^#\s*define\s+UV__(E[A-Z0-9]+)\s+\((-\d+)\)\s*$")


def uv_windows_codes(header: Path = UV_ERRNO_H) -> dict[str, int]:
    """UV__E* values of the `#else` branch (the one _WIN32 takes) of each errno block."""
    try:
        lines = header.read_text(encoding="utf-8").splitlines()
    except OSError:
        raise SourceMissing(f"{header} not found (apt-get install -y libuv1-dev)") from None
    codes = {}
    block = None
    in_else = False
    for raw in lines:
        line = raw.strip()
        match = _IF.match(line)
        if match:
            block, in_else = match.group(1), False
            continue
        if block is None:
            continue
        if line == "#else":
            in_else = True
        elif line.startswith("#endif"):
            block, in_else = None, False
        elif in_else:
            define = _DEFINE.match(line)
            if define and define.group(1) == block:
                codes[block] = int(define.group(2))
    if not codes:
        raise SourceMissing(f"{header}: no Windows UV__E* codes found")
    return codes


def libuv_windows(kb: Path = KB, header: Path = UV_ERRNO_H) -> dict:
    version = package_version("libuv1-dev")
    codes = uv_windows_codes(header)
    names = errno_notes(kb)
    messages = {name: codes[name] for name in sorted(names) if name in codes}
    return {
        "_source": (
            f"Debian libuv1-dev {version}: {header}, the #else (_WIN32) branch value of each "
            "UV__E* code, for the errnos that have a kb/errno note"
        ),
        "messages": messages,
    }


# ---------------------------------------------------------------- output


GENERATORS = {
    "glibc-l10n.json": glibc_l10n,
    "glibc-gai-l10n.json": glibc_gai_l10n,
    "musl.json": musl,
    "libuv-windows.json": libuv_windows,
}


def render(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n"


def generate(out: Path = OUT, kb: Path = KB) -> list[Path]:
    """Build every file in memory first, then write them all to `out`."""
    rendered = {name: render(func(kb)) for name, func in GENERATORS.items()}
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered.items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate data/messages/*.json from primary sources.")
    parser.add_argument("--out", type=Path, default=OUT, help="output directory (default: data/messages)")
    parser.add_argument("--kb", type=Path, default=KB, help="notes directory (default: kb)")
    args = parser.parse_args(argv)
    try:
        written = generate(args.out, args.kb)
    except SourceMissing as exc:
        print(f"extract_messages: {exc}", file=sys.stderr)
        return 2
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"extract_messages: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
