"""A built database for the lookups: the existing one, or one built on first use.

Light on purpose (the lookup path imports it): the build and its dependencies load only when
there is no database yet. The caller hands in how to read the proof's records, so this layer
never imports the proof engine. Databases in the cache are named after the content they were
built from and never deleted here: two installs of different notes share the cache without
rebuilding each other's.
"""

from __future__ import annotations

import os
import sys

from .. import paths


def ensure_db(proof=None, prebuilt=None) -> str:
    """Return a built database, building it first (notes and, from `proof()`, the shipped
    verification records) if there is none. In the cache, `prebuilt(path)` may supply it
    first: the database the wheel was built with, when its content is the same."""
    path = paths.db_path()
    explicit = bool(os.environ.get("TCPKB_DB"))
    root = None if explicit else paths.checkout_root()
    if root:
        paths.announce_checkout(root)
    if os.path.exists(path):
        if root:
            paths.warn_if_stale(path)
        return path
    if prebuilt is not None and not explicit and not root and (found := prebuilt(path)):
        return found
    fallback = paths.fallback_db_path(path)
    if not explicit and not root and os.path.exists(fallback) and not _writable(os.path.dirname(path)):
        return fallback  # built there because the cache could not be written, and still cannot
    return build_db(path, proof, may_fall_back=not explicit and not root)


def _writable(folder: str) -> bool:
    """Whether a database could be made in `folder` (or in the folder that would hold it)."""
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    return os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)


def build_db(path: str, proof=None, may_fall_back: bool = False, why: str = "") -> str:
    """Build the database at `path` from this install's notes; in a cache that cannot be
    written, into a private temporary folder instead, with one warning."""
    from pathlib import Path

    from .database import build  # the heavy imports, only on a cold start

    kb = paths.kb_dir()
    records = proof() if proof else None
    try:
        build(Path(kb), Path(path), records)
    except OSError as e:
        if not may_fall_back:
            raise
        fallback = paths.fallback_db_path(path)
        os.makedirs(os.path.dirname(fallback), mode=0o700, exist_ok=True)
        print(f"tcpkb: cannot write the cache {os.path.dirname(path)} ({e.strerror or e}); using a "
              f"temporary database {fallback} (set XDG_CACHE_HOME to a writable folder to keep one)",
              file=sys.stderr)
        build(Path(kb), Path(fallback), records)
        return fallback
    print(f"tcpkb: {why}built {path} from {kb}", file=sys.stderr)
    return path
