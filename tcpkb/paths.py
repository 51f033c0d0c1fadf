"""Where the notes, the results and the database live (building it is tcpkb.answer's business).

Two layouts:
- a checkout (pyproject.toml and kb/ beside the package): notes in kb/, the
  database in data/tcpkb.db, rebuilt by `tcpkb build`;
- an installed wheel: notes shipped inside the package (tcpkb/kb), the
  database built on first use into a cache file named after the notes'
  content hash, so a new release never reads an old database.
TCPKB_KB and TCPKB_DB override both (tests use them).

Paths here are plain strings and os.path, not pathlib: this module is on the
path of every lookup, and importing pathlib would cost more than the lookup.
"""

from __future__ import annotations

import hashlib
import os
import sys

PACKAGE = os.path.dirname(os.path.realpath(__file__))
SCHEMA = 3  # the database's layout: bump when a table or column changes


def checkout_root() -> str | None:
    root = os.path.dirname(PACKAGE)
    if os.path.isfile(os.path.join(root, "pyproject.toml")) and os.path.isdir(os.path.join(root, "kb")):
        return root
    return None


def kb_dir() -> str:
    if env := os.environ.get("TCPKB_KB"):
        return env
    root = checkout_root()
    return os.path.join(root or PACKAGE, "kb")


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tcpkb")


def results_dirs() -> list[str]:
    """Where verification results are read from: the shipped ones, then this user's own runs.

    TCPKB_RESULTS names the directories instead, separated by os.pathsep; `tcpkb verify`
    writes to the last (tests use it)."""
    if env := os.environ.get("TCPKB_RESULTS"):
        return env.split(os.pathsep)
    root = checkout_root()
    if root and not os.environ.get("TCPKB_KB"):
        return [os.path.join(root, "data", "verify")]
    return [os.path.join(PACKAGE, "data", "verify"), os.path.join(cache_dir(), "verify")]


def messages_dir() -> str:
    """Messages from other sources than the notes (glibc translations, musl, libuv codes)."""
    root = checkout_root()
    if root and not os.environ.get("TCPKB_KB"):
        return os.path.join(root, "data", "messages")
    return os.path.join(PACKAGE, "data", "messages")


def site_dir() -> str:
    """Templates, assets and diagram layout of the web faces (site/ in a checkout)."""
    root = checkout_root()
    return os.path.join(root, "site") if root else os.path.join(PACKAGE, "site")


def message_files() -> list[str]:
    folder = messages_dir()
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".json"))


def results_dir_for_writing() -> str:
    """`tcpkb verify` writes to the checkout's data/verify, or else the user's cache."""
    return results_dirs()[-1]


def result_files() -> list[str]:
    files = []
    for folder in results_dirs():
        if os.path.isdir(folder):
            files += sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".json"))
    return files


def db_path(kb: str | os.PathLike | None = None) -> str:
    """The database the lookups read (it may not exist yet)."""
    if env := os.environ.get("TCPKB_DB"):
        return env
    root = checkout_root()
    if root and not os.environ.get("TCPKB_KB"):
        return os.path.join(root, "data", "tcpkb.db")
    return os.path.join(cache_dir(), f"tcpkb-{content_hash(kb or kb_dir())[:16]}.db")


def note_names(kb: str | os.PathLike) -> list[str]:
    """Every note file as 'kind/NAME.md' relative to kb/ (kb/README.md is not a note)."""
    names = []
    with os.scandir(kb) as kinds:
        for kind in kinds:
            if kind.is_dir():
                with os.scandir(kind.path) as files:
                    names += [f"{kind.name}/{f.name}" for f in files
                              if f.name.endswith(".md") and f.is_file()]
    return sorted(names)


def content_hash(kb: str | os.PathLike) -> str:
    """A digest of what a database is built from: every note's path and bytes, and the
    verification result files (by name, size and mtime: they are large, and only ever
    replaced whole)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"schema {SCHEMA}\0".encode())  # a database of another layout is rebuilt, not misread
    for rel in note_names(kb):
        with open(os.path.join(kb, rel), "rb") as f:
            digest.update(rel.encode() + b"\0" + f.read() + b"\0")
    for path in result_files() + message_files():
        st = os.stat(path)
        digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str, data: str | bytes) -> None:
    """Write a file whole or not at all (a temporary beside it, renamed over it), readable as
    the umask allows: files in a shared cache are for every user the umask lets read them."""
    import tempfile

    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tcpkb-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def is_stale(path: str) -> bool | None:
    """True when kb/ or the results changed since `path` was built; None if unreadable."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            row = conn.execute("select value from meta where key = 'notes_hash'").fetchone()
    except sqlite3.Error:
        return None
    return row is None or row[0] != content_hash(kb_dir())


def warn_if_stale(path: str) -> None:
    """In a checkout, say so when kb/ has changed since the database was built."""
    if is_stale(path):  # None (unreadable): the lookup itself will report it
        print(f"tcpkb: kb/ or data/verify/ has changed since {path} was built; run `tcpkb build`",
              file=sys.stderr)
