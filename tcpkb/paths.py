"""Where the notes and the database live, and building the database when it is missing.

Two layouts:
- a checkout (pyproject.toml and kb/ beside the package): notes in kb/, the
  database in data/tcpkb.db, rebuilt by `tcpkb build`;
- an installed wheel: notes shipped inside the package (tcpkb/kb), the
  database built on first use into a cache file named after the notes'
  content hash, so a new release never reads an old database.
TCPKB_KB and TCPKB_DB override both (tests use them).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def checkout_root() -> Path | None:
    root = PACKAGE.parent
    if (root / "pyproject.toml").is_file() and (root / "kb").is_dir():
        return root
    return None


def kb_dir() -> Path:
    if env := os.environ.get("TCPKB_KB"):
        return Path(env)
    root = checkout_root()
    return root / "kb" if root else PACKAGE / "kb"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tcpkb"


def db_path(kb: Path | None = None) -> Path:
    """The database the lookups read (it may not exist yet)."""
    if env := os.environ.get("TCPKB_DB"):
        return Path(env)
    root = checkout_root()
    if root and not os.environ.get("TCPKB_KB"):
        return root / "data" / "tcpkb.db"
    return cache_dir() / f"tcpkb-{content_hash(kb or kb_dir())[:16]}.db"


def note_paths(kb: Path) -> list[Path]:
    """Every note file: kb/<dir>/<name>.md (kb/README.md is not a note)."""
    return [kb / rel for rel in _note_names(str(kb))]


def _note_names(kb: str) -> list[str]:
    # os.scandir rather than pathlib: this runs on every lookup of an installed copy.
    names = []
    with os.scandir(kb) as kinds:
        for kind in kinds:
            if kind.is_dir():
                with os.scandir(kind.path) as files:
                    names += [f"{kind.name}/{f.name}" for f in files
                              if f.name.endswith(".md") and f.is_file()]
    return sorted(names)


def content_hash(kb: Path) -> str:
    """A digest of every note's path and bytes: the key of a built database."""
    digest = hashlib.blake2b(digest_size=16)
    for rel in _note_names(str(kb)):
        with open(os.path.join(kb, rel), "rb") as f:
            digest.update(rel.encode() + b"\0" + f.read() + b"\0")
    return digest.hexdigest()


def warn_if_stale(path: Path) -> None:
    """In a checkout, say so when kb/ has changed since the database was built."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            row = conn.execute("select value from meta where key = 'notes_hash'").fetchone()
    except sqlite3.Error:
        return  # the lookup itself will report an unreadable database
    if row is None or row[0] != content_hash(kb_dir()):
        print(f"tcpkb: kb/ has changed since {path} was built; run `tcpkb build`", file=sys.stderr)


def ensure_db() -> Path:
    """Return a built database, building it first if there is none."""
    path = db_path()
    if path.exists():
        if checkout_root() and not os.environ.get("TCPKB_DB"):
            warn_if_stale(path)
        return path
    from .build import build  # the heavy imports, only on a cold start

    kb = kb_dir()
    build(kb, path)
    if path.parent == cache_dir():  # drop databases of notes that no longer exist
        for old in path.parent.glob("tcpkb-*.db"):
            if old != path:
                old.unlink(missing_ok=True)
    print(f"tcpkb: built {path} from {kb}", file=sys.stderr)
    return path
