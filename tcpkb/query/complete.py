"""Shell completion of a lookup's query from the database: entry names, or ids for `show`."""

from __future__ import annotations

from ..kinds import KINDS
from .lookup import connect


def names(db: str, command: str, incomplete: str, most: int = 200) -> list[str]:
    """The names of `command`'s entries (every id for show) that start with `incomplete`, in
    any case: `tcpkb errno ECONN<TAB>`."""
    like = incomplete.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with connect(db) as conn:
        if command == "show":
            rows = conn.execute("select id from entries where id like ? escape '\\' order by id limit ?",
                                (like, most))
        elif command in KINDS:
            rows = conn.execute("select name from entries where kind = ? and name like ? escape '\\' "
                                "order by name limit ?", (command, like, most))
        else:
            return []
        return [r[0] for r in rows]
