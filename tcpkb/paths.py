"""Where the notes, the results and the database live (building it is tcpkb.answer's business).

Two layouts:
- a checkout: a directory holding this project's kb/README.md, at or above the current
  directory. Every command uses its notes (kb/), results (data/verify/) and database
  (data/tcpkb.db, rebuilt by `tcpkb build`), whether tcpkb is installed or not;
- anywhere else: the notes shipped inside the package (tcpkb/kb), the database built on
  first use into a cache file named after the notes' content, so installs of different
  notes share the cache without touching each other's databases.
TCPKB_KB (or `tcpkb --kb DIR`) and TCPKB_DB override both (tests use them).

Paths here are plain strings and os.path, not pathlib, and nothing heavier than zlib is
imported at the top: this module is on the path of every lookup.
"""

from __future__ import annotations

import os
import sys

PACKAGE = os.path.dirname(os.path.realpath(__file__))
SCHEMA = 5  # the database's layout: bump when a table or column changes
# The first line of this project's kb/README.md: how a checkout is told from any other kb/.
KB_README_MARK = b"# Writing a note\n\nEvery entry of tcpkb is"


def _is_checkout(root: str) -> bool:
    try:
        with open(os.path.join(root, "kb", "README.md"), "rb") as f:
            return f.read(len(KB_README_MARK)) == KB_README_MARK
    except OSError:
        return False


def checkout_root() -> str | None:
    """The checkout at or above the current directory, unless TCPKB_KB names other notes."""
    if os.environ.get("TCPKB_KB"):
        return None
    try:
        here = os.getcwd()
    except OSError:  # the current directory was removed
        return None
    while True:
        if _is_checkout(here):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def _source_root() -> str:
    """Where the package's own data is: inside it (a wheel), or beside it (an editable install,
    whose package directory is the checkout's tcpkb/)."""
    if os.path.isdir(os.path.join(PACKAGE, "kb")):
        return PACKAGE
    return os.path.dirname(PACKAGE)


def _data_root() -> str:
    """The folder whose data/ holds results and messages: the checkout, or the package."""
    root = checkout_root()
    if root:
        return os.path.join(root, "data")
    source = _source_root()
    return os.path.join(source, "data")


def kb_dir() -> str:
    if env := os.environ.get("TCPKB_KB"):
        return env
    root = checkout_root()
    return os.path.join(root or _source_root(), "kb")


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tcpkb")


def results_dirs() -> list[str]:
    """Where verification results are read from: the shipped ones, then this user's own runs.

    TCPKB_RESULTS names the directories instead, separated by os.pathsep; `tcpkb verify`
    writes to the last (tests use it)."""
    if env := os.environ.get("TCPKB_RESULTS"):
        return env.split(os.pathsep)
    if checkout_root():
        return [os.path.join(_data_root(), "verify")]
    return [os.path.join(_data_root(), "verify"), os.path.join(cache_dir(), "verify")]


def messages_dir() -> str:
    """Messages from other sources than the notes (glibc translations, musl, libuv codes)."""
    return os.path.join(_data_root(), "messages")


def site_dir() -> str:
    """Templates, assets and diagram layout of the web faces (site/ in a checkout)."""
    return os.path.join(checkout_root() or _source_root(), "site")


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
    if root:
        return os.path.join(root, "data", "tcpkb.db")
    return os.path.join(cache_dir(), f"tcpkb-{notes_digest(kb or kb_dir())[:16]}.db")


def fallback_db_path(path: str) -> str:
    """Where a database goes when its folder cannot be written: a private temporary folder."""
    import tempfile

    folder = os.path.join(tempfile.gettempdir(), f"tcpkb-{os.getuid()}")
    return os.path.join(folder, os.path.basename(path))


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


def _sources(kb: str | os.PathLike) -> list[tuple[str, str]]:
    """(name, path) of everything a database is built from: the notes, the verification
    results and the message tables. Names are relative, so two installs of the same content
    in different places have the same key."""
    notes = [(f"kb/{rel}", os.path.join(kb, rel)) for rel in note_names(kb)]
    return notes + [(f"data/{os.path.basename(os.path.dirname(p))}/{os.path.basename(p)}", p)
                    for p in result_files() + message_files()]


def content_hash(kb: str | os.PathLike) -> str:
    """A digest of what a database is built from: the content of every note, results file and
    message table, with their relative names; never where they are or when they were written."""
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"schema {SCHEMA}\0".encode())  # a database of another layout is rebuilt, not misread
    for name, path in _sources(kb):
        with open(path, "rb") as f:
            digest.update(name.encode() + b"\0" + f.read() + b"\0")
    return digest.hexdigest()


def signature(kb: str | os.PathLike) -> str:
    """A cheap stand-in for content_hash: every source file's name, size, inode and
    modification time, read with one scandir per folder. Equal signatures mean the same
    content; a new one only means hashing again."""
    import zlib

    stats = []
    with os.scandir(kb) as kinds:
        for kind in kinds:
            if kind.is_dir():
                with os.scandir(kind.path) as files:
                    stats += [(kind.name + "/" + f.name, f.stat()) for f in files if f.name.endswith(".md")]
    stats += [(p, os.stat(p)) for p in result_files() + message_files()]
    text = repr(sorted((name, st.st_size, st.st_ino, st.st_mtime_ns) for name, st in stats)).encode()
    return f"{SCHEMA}-{zlib.crc32(text):08x}{zlib.adler32(text):08x}-{len(text)}"


def notes_digest(kb: str | os.PathLike) -> str:
    """content_hash(kb), remembered in the cache by signature: a lookup stats the notes
    instead of reading them all, and hashes them again only when a file changed."""
    sig = signature(kb)
    memo = os.path.join(cache_dir(), "digests")
    try:
        with open(memo, encoding="ascii") as f:
            known = f.read().splitlines()
    except (OSError, ValueError):
        known = []
    for line in known:
        if line.startswith(sig + " "):
            return line[len(sig) + 1:]
    digest = content_hash(kb)
    try:  # an unwritable cache only means hashing again next time
        write_atomic(memo, "\n".join(known[-63:] + [f"{sig} {digest}"]) + "\n")
    except OSError:
        pass
    return digest


def announce_checkout(root: str) -> None:
    """Say once per checkout (remembered in the cache) that its notes and database are used."""
    memo = os.path.join(cache_dir(), "checkouts")
    try:
        with open(memo, encoding="utf-8", errors="replace") as f:
            known = f.read().splitlines()
    except OSError:
        known = []
    if root in known:
        return
    print(f"tcpkb: in the checkout {root}: using its kb/ and data/tcpkb.db "
          "(--kb DIR or TCPKB_KB for other notes)", file=sys.stderr)
    try:
        write_atomic(memo, "\n".join(known[-63:] + [root]) + "\n")
    except (OSError, UnicodeEncodeError):
        pass


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


def is_stale(path: str, recorded: str | None = None) -> bool | None:
    """True when kb/ or the results changed since `path` was built; None if unreadable.
    `recorded` is the notes digest the database was built from, when the caller knows it."""
    if recorded is None:
        import sqlite3

        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                row = conn.execute("select value from meta where key = 'notes_hash'").fetchone()
        except sqlite3.Error:
            return None
        if row is None:
            return True
        recorded = row[0]
    return recorded != notes_digest(kb_dir())


def warn_if_stale(path: str, recorded: str | None = None) -> None:
    """In a checkout, say so when kb/ has changed since the database was built."""
    if is_stale(path, recorded):  # None (unreadable): the lookup itself will report it
        print(f"tcpkb: kb/ or data/ has changed since {path} was built; run `tcpkb build` "
              "(or any lookup rebuilds it when the database is missing)", file=sys.stderr)
