"""The build: tables, full-text search, rendering, and atomic replacement."""

from __future__ import annotations

import sqlite3
import shutil

import pytest

from tcpkb.build.database import BuildError, build
from tcpkb.query.lookup import connect, search

from .conftest import FIXTURES


@pytest.fixture
def fixture_db(base_kb, tmp_path):
    path = tmp_path / "out" / "tcpkb.db"
    build(base_kb, path)
    return path


def test_tables(fixture_db):
    conn = sqlite3.connect(fixture_db)
    tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
    for table in ("entries", "sections", "aliases", "messages", "links", "errno", "errno_numbers",
                  "signals", "signal_numbers", "states", "transitions", "flags",
                  "flag_combinations", "meta", "search", "search_fts"):
        assert table in tables
    assert conn.execute("select count(*) from entries").fetchone()[0] == 11
    assert conn.execute("select dst from links where src = 'errno:ECONNRESET'").fetchall() == [("flag:RST",)]
    assert conn.execute("select to_state from transitions where from_state = 'state:ESTABLISHED'"
                        ).fetchall() == [("state:CLOSE",)]
    # Every platform's number is a row, the Linux ABIs filled from the generic one.
    rows = dict(conn.execute("select platform, number from errno_numbers where entry_id = 'errno:ECONNRESET'"))
    assert rows == {"linux": 104, "alpha": 54, "mips": 104, "sparc": 104, "parisc": 104,
                    "powerpc": 104, "darwin": 54, "freebsd": 54, "windows": 10054, "libuv": -4077}
    assert conn.execute("pragma foreign_key_check").fetchall() == []


def test_sections_and_html(fixture_db):
    conn = sqlite3.connect(fixture_db)
    slugs = [r[0] for r in conn.execute(
        "select slug from sections where entry_id = 'errno:ECONNRESET' order by position")]
    assert slugs == ["meaning", "causes", "what-to-do", "how-to-see-it"]
    html = conn.execute("select body_html from entries where id = 'errno:ECONNRESET'").fetchone()[0]
    assert "<h2>Meaning</h2>" in html and "<code>SO_REUSEADDR</code>" in html


def test_raw_html_in_a_note_is_not_rendered(base_kb, tmp_path):
    note = base_kb / "errno" / "EAGAIN.md"
    note.write_text(note.read_text() + "\n<script>alert(1)</script>\n")
    build(base_kb, tmp_path / "x.db")
    html = sqlite3.connect(tmp_path / "x.db").execute(
        "select body_html from entries where id = 'errno:EAGAIN'").fetchone()[0]
    assert "<script>" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize("words,expected", [
    ("SO_REUSEADDR", "errno:ECONNRESET"),
    ("reuseaddr", "errno:ECONNRESET"),
    ("ECONNRESET", "errno:ECONNRESET"),
    ("econnreset", "errno:ECONNRESET"),
    ("connection reset", "errno:ECONNRESET"),
    ("EWOULDBLOCK", "errno:EAGAIN"),
    ("CONNRES", "errno:ECONNRESET"),  # a fragment of a name falls back to a substring match
])
def test_fts_finds(fixture_db, words, expected):
    with connect(fixture_db) as conn:
        ids = [r["id"] for r in search(conn, words)]
    assert expected in ids


def test_broken_note_fails_and_leaves_database_untouched(base_kb, fixture_db):
    before = fixture_db.read_bytes()
    shutil.copytree(FIXTURES / "lint" / "KB010", base_kb, dirs_exist_ok=True)
    with pytest.raises(BuildError) as e:
        build(base_kb, fixture_db)
    assert {p.code for p in e.value.problems} == {"KB010"}  # one per broken reference
    assert fixture_db.read_bytes() == before
    assert list(fixture_db.parent.glob(".tcpkb-*")) == []  # no temporary file left behind


def test_cli_build_failure_exit_1_names_file_and_line(base_kb, fixture_db):
    from typer.testing import CliRunner

    from tcpkb.cli import app

    before = fixture_db.read_bytes()
    shutil.copytree(FIXTURES / "lint" / "KB002", base_kb, dirs_exist_ok=True)
    result = CliRunner().invoke(app, ["build", "--kb", str(base_kb), "--db", str(fixture_db)])
    assert result.exit_code == 1
    assert "EYAML.md:4: KB002" in result.output
    assert fixture_db.read_bytes() == before


def test_edit_and_rebuild_is_reflected(base_kb, fixture_db):
    note = base_kb / "errno" / "EAGAIN.md"
    note.write_text(note.read_text().replace("A fixture errno with an alias.", "Edited summary."))
    build(base_kb, fixture_db)
    with connect(fixture_db) as conn:
        assert conn.execute("select summary from entries where id = 'errno:EAGAIN'").fetchone()[0] == "Edited summary."


def test_stale_database_is_reported(base_kb, fixture_db, monkeypatch, capsys):
    from tcpkb import paths

    monkeypatch.setattr(paths, "kb_dir", lambda: base_kb)
    paths.warn_if_stale(fixture_db)
    assert capsys.readouterr().err == ""
    (base_kb / "errno" / "EAGAIN.md").write_text((base_kb / "errno" / "EAGAIN.md").read_text() + "\n")
    paths.warn_if_stale(fixture_db)
    assert "has changed" in capsys.readouterr().err


def test_a_results_file_that_breaks_the_trace_schema_stops_the_build(tmp_path, monkeypatch):
    """The build loads results only through the schema: a bad trace is one line naming the file."""
    import json

    from tcpkb.verify import proof_records

    good = sorted((FIXTURES.parent.parent / "data" / "verify").glob("*.json"))[0]
    data = json.loads(good.read_text())
    data["results"][0]["trace"] = {"packets": [{"flags": 7}]}
    (tmp_path / good.name).write_text(json.dumps(data))
    monkeypatch.setenv("TCPKB_RESULTS", str(tmp_path))
    with pytest.raises(ValueError, match=rf"{good.name}: .* does not match the trace schema"):
        proof_records()
