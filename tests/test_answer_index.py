"""The answer index says exactly what the database path says, for every entry."""

from __future__ import annotations

import shutil

import pytest

from tcpkb import answer, answer_index


@pytest.fixture(scope="module")
def indexed_db(kb_db, tmp_path_factory):
    """A copy of the session's database with its index written beside it."""
    db = tmp_path_factory.mktemp("indexed") / "tcpkb.db"
    shutil.copy(kb_db, db)
    answer_index.write(str(db))
    return db


def _keys(db) -> list[tuple[str, str]]:
    with open(answer_index.index_path(str(db)), "rb") as f:
        header = f.readline().split()
        table = f.read(int(header[4])).decode()
    return [tuple(line.split("\t")[:2]) for line in table.splitlines()]


def _index_answer(db, kind: str, query: str, variant: str) -> bytes | None:
    f, _, size = answer_index.read_header(str(db))
    with f:
        return answer_index.answer(f, size, kind, query, variant)


def test_every_entry_answers_the_same_from_index_and_database(indexed_db, monkeypatch, capsys):
    monkeypatch.setenv("TCPKB_DB", str(indexed_db))
    monkeypatch.delenv("NO_COLOR", raising=False)
    keys = _keys(indexed_db)
    shown = [q for k, q in keys if k == "show"]
    with answer.lookup.connect(str(indexed_db)) as conn:
        ids = [r[0] for r in conn.execute("select id from entries where kind != 'sysctl'")]
    assert sorted(shown) == sorted(ids)  # every entry but the knobs (live values) has a key
    names = {k: q for k, q in keys if k != "show"}  # a query of each kind, and every id
    checks = [("show", i) for i in ids] + list(names.items())
    for kind, query in checks:
        for variant, kwargs in (("full", {}), ("brief-en", {"brief": True, "lang": "en"}),
                                ("brief-zh", {"brief": True, "lang": "zh"}), ("json", {"as_json": True})):
            assert answer.find(kind, query, **kwargs) == 0
            printed = capsys.readouterr().out.encode()
            assert _index_answer(indexed_db, kind, query, variant) == printed, (kind, query, variant)


def test_every_key_names_what_its_finder_finds(indexed_db, monkeypatch, capsys):
    """Names, aliases and numbers in both cases: the JSON answer of each key is the database's."""
    monkeypatch.setenv("TCPKB_DB", str(indexed_db))
    keys = [(k, q) for k, q in _keys(indexed_db) if k != "show"]
    assert len(keys) > 600
    for kind, query in keys[::3]:  # a third of them: each costs a lookup
        assert answer.find(kind, query, as_json=True) == 0
        assert _index_answer(indexed_db, kind, query, "json") == capsys.readouterr().out.encode(), (kind, query)


def test_an_index_of_another_database_is_ignored(indexed_db, tmp_path):
    other = tmp_path / "tcpkb.db"
    shutil.copy(indexed_db, other)
    shutil.copy(answer_index.index_path(str(indexed_db)), answer_index.index_path(str(other)))
    assert answer_index.read_header(str(other)) is None  # another inode: not this database's index
    assert answer_index.read_header(str(indexed_db)) is not None


def test_misses_and_odd_queries_are_not_answered(indexed_db):
    for query in ("NOPE", "104\t0:1", "", "\udcff", "ECONNRESET\n"):
        assert _index_answer(indexed_db, "errno", query, "full") is None
    assert _index_answer(indexed_db, "sysctl", "tcp_fin_timeout", "full") is None  # live: never indexed
