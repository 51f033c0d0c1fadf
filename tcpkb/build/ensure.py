"""A built database for the lookups: the existing one, or one built on first use.

Light on purpose (the lookup path imports it): the build and its dependencies load only when
there is no database yet. The caller hands in how to read the proof's records, so this layer
never imports the proof engine.
"""

from __future__ import annotations

import os
import sys

from .. import paths


def ensure_db(proof=None) -> str:
    """Return a built database, building it first (notes and, from `proof()`, the shipped
    verification records) if there is none."""
    path = paths.db_path()
    if os.path.exists(path):
        if paths.checkout_root() and not os.environ.get("TCPKB_DB"):
            paths.warn_if_stale(path)
        return path
    from pathlib import Path

    from .database import build  # the heavy imports, only on a cold start

    kb = paths.kb_dir()
    build(Path(kb), Path(path), proof() if proof else None)
    folder = os.path.dirname(path)
    if folder == paths.cache_dir():  # drop databases of notes that no longer exist
        for old in os.listdir(folder):
            if old.startswith("tcpkb-") and old.endswith(".db") and old != os.path.basename(path):
                os.unlink(os.path.join(folder, old))
    print(f"tcpkb: built {path} from {kb}", file=sys.stderr)
    return path
