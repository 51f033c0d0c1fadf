"""explain's matching data, computed once by the build rather than on every pasted line."""

from __future__ import annotations

from ..clauses import fragments, weight


def fragment_table(messages: list[tuple[str, str]]) -> list[list[list]]:
    """Each (entry_id, message)'s fragments with their weights, [[fragment, weight]…].

    A fragment many entries share ("java.net.SocketException", "ssh: connect to host") is
    boilerplate and weighs little; the clause only one entry has ("Connection reset") decides.
    """
    frags_of = [fragments(text) for _, text in messages]
    owners: dict[str, set[str]] = {}
    for (entry_id, _), frags in zip(messages, frags_of):
        for f in frags:
            owners.setdefault(f, set()).add(entry_id)
    return [[[f, round(weight(f) / len(owners[f]), 3)] for f in dict.fromkeys(frags)]
            for frags in frags_of]
