"""The explain index answers as the database does, with `re`'s own patterns, and without
importing sqlite3, re or json on the way."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpkb import answer, explain_index, patterns
from tcpkb.answer_index import db_stamp
from tcpkb.present import json_text
from tcpkb.query import explain as rules

ROOT = Path(__file__).resolve().parent.parent
EVAL = [json.loads(line) for line in (ROOT / "tests" / "explain_eval.jsonl").read_text().splitlines() if line.strip()]
TEXTS = [e["text"] for e in EVAL] + [
    (ROOT / "tests" / "fixtures" / "kernel_words" / name).read_text()
    for name in sorted(os.listdir(ROOT / "tests" / "fixtures" / "kernel_words"))]


@pytest.fixture(scope="module")
def dbs(kb_db, tmp_path_factory):
    """(a copy of the session's database with its explain index, a copy without one)."""
    folder = tmp_path_factory.mktemp("explain-index")
    indexed, plain = folder / "indexed.db", folder / "plain.db"
    shutil.copy(kb_db, indexed)
    shutil.copy(kb_db, plain)
    explain_index.write(str(indexed))
    return indexed, plain


@pytest.fixture
def indexed_lexicon(dbs):
    loaded = explain_index.load(str(dbs[0]))
    assert loaded is not None and loaded[2]  # made here: its programs are this interpreter's
    yield loaded[0]
    explain_index.close(loaded[0])


def test_the_index_matches_as_the_database_does(indexed_lexicon, lexicon):
    """Every evaluation line and netstat/nstat capture: the same matches, scores and evidence."""
    for text in TEXTS:
        assert rules.explained(indexed_lexicon, text) == rules.explained(lexicon, text), text[:120]


def test_the_stored_programs_are_what_re_compiles(dbs):
    """Each program in the index, given to _sre, is the Pattern `re.compile` makes: the same
    groups and flags, and the same matches over every evaluation line."""
    import _sre
    import marshal

    loaded = explain_index.load(str(dbs[0]))
    programs = loaded[0]["programs"]
    explain_index.close(loaded[0])
    assert set(patterns.SOURCES) <= set(programs)  # every pattern explain and its printer use
    for source, program in programs.items():
        ours, theirs = _sre.compile(*marshal.loads(program)), re.compile(source)
        assert (ours.pattern, ours.flags, ours.groups, ours.groupindex) == \
               (theirs.pattern, theirs.flags, theirs.groups, theirs.groupindex)
        for text in TEXTS[::7]:
            assert [m.span() for m in ours.finditer(text)] == [m.span() for m in theirs.finditer(text)], source


def test_json_is_laid_out_as_json_dumps_lays_it_out(lexicon):
    for text in TEXTS:
        answer_ = rules.public(rules.explained(lexicon, text))
        assert json_text.dumps(answer_) == json.dumps(answer_, ensure_ascii=False, indent=2)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_any_json_value_is_laid_out_as_json_dumps_lays_it_out(value):
    assert json_text.dumps(value) == json.dumps(value, ensure_ascii=False, indent=2)


def _printed(capsys, call) -> tuple[int, str, str]:
    status = call()
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_the_fast_path_prints_what_the_database_path_prints(dbs, monkeypatch, capsys, as_json):
    """Output and exit status, for a spread of the evaluation lines (negatives among them)."""
    indexed, plain = dbs
    monkeypatch.setenv("TCPKB_DB", str(plain))  # the database path: the lexicon read from SQLite
    monkeypatch.delenv("NO_COLOR", raising=False)
    texts = TEXTS[::6] + ["hello world", "make: *** [all] Error 2"]
    for text in texts:
        fast = _printed(capsys, lambda: explain_index.answer(str(indexed), text, as_json))
        slow = _printed(capsys, lambda: answer.explain(text, as_json=as_json))
        assert fast == slow, text[:120]


def _transplant(indexed: Path, plain: Path, target: Path) -> tuple[Path, list[bytes], bytes]:
    """A copy of the database at `target`, and the index's header fields made out to it (to be
    altered) and the rest of the index, for writing beside it."""
    shutil.copy(plain, target)
    header, rest = Path(explain_index.index_path(str(indexed))).read_bytes().split(b"\n", 1)
    parts = header.split()
    parts[2] = db_stamp(str(target)).encode()
    return target, parts, rest


PASTED = st.one_of(
    st.text(min_size=1, max_size=200),
    st.tuples(st.sampled_from(TEXTS), st.integers(0, 400), st.integers(0, 400), st.text(max_size=20)).map(
        lambda t: t[0][t[1]:t[1] + t[2] + 1] + t[3]),
    st.lists(st.sampled_from(TEXTS[::11] + ["[Errno 9]", "gaierror", "WinError 10054", "emfile", " (publickey)",
                                            "’", "。", "\n", " 141", "SYN_SENT 12", "Timed out"]),
             min_size=1, max_size=4).map(" ".join),
).filter(str.strip)


@settings(max_examples=int(os.environ.get("TCPKB_FUZZ_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=PASTED, as_json=st.booleans())
def test_any_pasted_text_prints_the_same_from_the_index(dbs, text, as_json):
    """Whatever is pasted (pieces of real lines, junk, mixtures), the fast path prints what the
    database path prints, and exits the same."""
    import contextlib
    import io

    indexed, plain = dbs
    outs = []
    saved = os.environ.get("TCPKB_DB")
    os.environ["TCPKB_DB"] = str(plain)  # the database path (hypothesis runs this many times: no monkeypatch)
    try:
        for call in (lambda: explain_index.answer(str(indexed), text, as_json),
                     lambda: answer.explain(text, as_json=as_json)):
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                status = call()
            outs.append((status, out.getvalue(), err.getvalue()))
    finally:
        if saved is None:
            del os.environ["TCPKB_DB"]
        else:
            os.environ["TCPKB_DB"] = saved
    assert outs[0] == outs[1]


def test_an_index_of_another_database_or_version_is_not_read(dbs, tmp_path):
    indexed, plain = dbs
    other = tmp_path / "other.db"
    shutil.copy(plain, other)
    shutil.copy(explain_index.index_path(str(indexed)), explain_index.index_path(str(other)))
    assert explain_index.load(str(other)) is None  # another inode: not this database's index
    assert explain_index.answer(str(other), "ECONNRESET", False) is None  # the database path answers
    older, parts, rest = _transplant(indexed, plain, tmp_path / "older.db")
    for broken in ([parts[0], b"0", *parts[2:]], parts[:5]):  # another layout version; a header cut short
        Path(explain_index.index_path(str(older))).write_bytes(b" ".join(broken) + b"\n" + rest)
        assert explain_index.load(str(older)) is None
    # made by another Python: its programs are not this engine's, so the database path answers
    Path(explain_index.index_path(str(older))).write_bytes(
        b" ".join([*parts[:4], b"cpython-3.99-1", parts[5]]) + b"\n" + rest)
    assert not explain_index.current(str(older))
    assert explain_index.answer(str(older), "ECONNRESET", False) is None


def test_a_damaged_index_is_passed_over_quietly(dbs, tmp_path, capsys, monkeypatch):
    """Cut short, overwritten, or with sizes out of the file: the index answers nothing and prints
    nothing, the database path answers instead, and no path ends in a traceback."""
    damaged, parts, rest = _transplant(*dbs, tmp_path / "damaged.db")
    monkeypatch.setenv("TCPKB_DB", str(damaged))
    table = rest.index(b"connection reset", len(rest) // 4)  # inside a table the rules read
    bodies = [rest[: len(rest) // 3], rest[: len(rest) - 5000], rest[:40] + b"\0" * (len(rest) - 40),
              b"not marshal at all", rest[:table] + b"\0" * 64 + rest[table + 64:]]
    headers = [parts] * len(bodies) + [[*parts[:6], b"9" * 25], [*parts[:6], str(len(rest) * 9).encode()]]
    for header, body in zip(headers, bodies + [rest, rest]):
        for text in ("ECONNRESET", "curl: (7) Failed to connect to localhost port 8080: Connection refused"):
            Path(explain_index.index_path(str(damaged))).write_bytes(b" ".join(header) + b"\n" + body)
            status = explain_index.answer(str(damaged), text, False)
            printed = capsys.readouterr().out
            assert status is None and printed == "" or status == 0 and printed.startswith("errno:")
            Path(explain_index.index_path(str(damaged))).write_bytes(b" ".join(header) + b"\n" + body)
            assert answer.explain(text) == 0 and capsys.readouterr().out.startswith("errno:")


def test_a_program_the_engine_rejects_is_passed_over(dbs, tmp_path, capsys, monkeypatch):
    """A stored program _sre refuses (a damaged one): the database path answers, compiling with re."""
    target = tmp_path / "bad.db"
    shutil.copy(dbs[1], target)
    real = patterns.program
    monkeypatch.setattr(patterns, "program", lambda source: (source, 32, [0, 0, 0], 0, {}, ()) if
                        source == rules._NAME.source else real(source))
    explain_index.write(str(target))
    monkeypatch.setattr(patterns, "program", real)
    monkeypatch.setenv("TCPKB_DB", str(target))
    patterns.forget()  # what earlier tests compiled is not this index's
    try:
        assert explain_index.answer(str(target), "ECONNRESET", False) is None
        assert not Path(explain_index.index_path(str(target))).exists()  # discarded
        assert answer.explain("ECONNRESET") == 0 and capsys.readouterr().out.startswith("errno:ECONNRESET")
    finally:
        patterns.forget()  # the rest of the session compiles afresh


def test_an_index_written_by_other_code_is_not_current(dbs, tmp_path, monkeypatch):
    """The header carries a stamp of the modules that lay tables and cards out: an upgrade that
    changes them retires older indexes without a version bump."""
    target = tmp_path / "code.db"
    shutil.copy(dbs[1], target)
    explain_index.write(str(target))
    assert explain_index.current(str(target))
    monkeypatch.setattr(explain_index, "code_stamp", lambda: "00000000")
    assert not explain_index.current(str(target)) and explain_index.load(str(target)) is None


def _run(args: list[str], db: Path, stdin: str | None = None, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TCPKB_DB": str(db), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *extra, "-m", "tcpkb", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=60, cwd=str(db.parent))


@pytest.mark.parametrize("options", [[], ["--json"]], ids=["text", "json"])
def test_a_piped_explain_imports_neither_sqlite3_nor_re_nor_json(dbs, options):
    """What makes it start like a lookup: the imports, not a timing (scripts/bench_cli.py times it)."""
    indexed, _ = dbs
    line = "curl: (7) Failed to connect to localhost port 8080: Connection refused"
    done = _run(["explain", *options, line], indexed, None, "-X", "importtime")
    first = json.loads(done.stdout)["matches"][0]["id"] if options else done.stdout.split()[0]
    assert done.returncode == 0 and first == "errno:ECONNREFUSED"
    imported = {row.split("|")[-1].strip() for row in done.stderr.splitlines() if row.startswith("import time:")}
    assert "tcpkb.explain_index" in imported
    assert not imported & {"sqlite3", "re", "json", "_sqlite3"}, imported & {"sqlite3", "re", "json"}


def test_stdin_and_a_miss_take_the_fast_path_too(dbs):
    indexed, plain = dbs
    log = "2024-05-01T10:00:00Z worker[12]: read tcp 10.0.0.5:41532->10.0.0.7:6379: read: connection reset by peer\n"
    fast, slow = _run(["explain"], indexed, log), _run(["explain"], plain, log)
    assert (fast.returncode, fast.stdout) == (slow.returncode, slow.stdout) == (0, fast.stdout)
    assert fast.stdout.startswith("errno:ECONNRESET")
    for db in (indexed, plain):  # a lone "-" read from stdin is the text, not a second request for it
        lone = _run(["explain"], db, "-")
        assert lone.returncode == 1 and "the text is empty" not in lone.stderr, lone.stderr
    miss = _run(["explain", "the build finished in 3 minutes"], indexed)
    assert miss.returncode == 1 and miss.stdout == ""
    assert miss.stderr == f"tcpkb: {rules.NO_MATCH}\n"
    fast = _run(["explain", "--json", "the build finished in 3 minutes"], indexed)
    assert fast.returncode == 1 and json.loads(fast.stdout)["error"] == rules.NO_MATCH


def test_a_build_writes_the_index_and_the_first_lookup_of_an_install_adopts_it(kb_db, tmp_path):
    target = tmp_path / "built.db"
    shutil.copy(kb_db, target)
    answer.write_indexes(str(target))
    assert explain_index.current(str(target))
    copy = tmp_path / "copy.db"
    shutil.copy(target, copy)
    assert not explain_index.current(str(copy))
    explain_index.adopt(str(target), str(copy))
    assert explain_index.current(str(copy))
