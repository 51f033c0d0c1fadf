"""Shared fixtures: the real notes built once per session, and a CLI runner over them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tcpkb.build.database import build
from tcpkb.cli import app
from tcpkb.verify import proof_records

ROOT = Path(__file__).resolve().parent.parent
KB = ROOT / "kb"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def kb_db(tmp_path_factory) -> Path:
    """The project's own notes, compiled into a throwaway database."""
    path = tmp_path_factory.mktemp("db") / "tcpkb.db"
    build(KB, path, proof_records())
    return path


@pytest.fixture(scope="session")
def db(kb_db):
    """A read-only connection to the session's database, rows by column name."""
    import sqlite3

    conn = sqlite3.connect(f"file:{kb_db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def lexicon(lookup_conn):
    """What explain's rules read, from the session's database (tcpkb.query.lexicon)."""
    from tcpkb.query.lexicon import read

    return read(lookup_conn)


@pytest.fixture(scope="session")
def lookup_conn(kb_db):
    """A connection to the session's database as the lookups open it (explain's tests)."""
    from tcpkb.query import lookup

    conn = lookup.connect(str(kb_db))
    yield conn
    conn.close()


@pytest.fixture
def base_kb(tmp_path) -> Path:
    """A copy of the small valid knowledge base the lint fixtures start from."""
    dest = tmp_path / "kb"
    shutil.copytree(FIXTURES / "lint" / "base", dest)
    return dest


@pytest.fixture
def cli(kb_db, monkeypatch):
    """Run `tcpkb ARGS…` in-process against the built notes; returns the click Result."""
    monkeypatch.setenv("TCPKB_DB", str(kb_db))
    monkeypatch.delenv("NO_COLOR", raising=False)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return run


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def served_log(kb_db, tmp_path_factory):
    """`tcpkb serve` as a real server on a free loopback port; yields its base URL and the
    file its stderr goes to (a file, not a pipe nobody reads: a full pipe would stall it)."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "stderr.txt"
    with open(log, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "tcpkb", "serve", "--port", str(port)],
                                env={**os.environ, "TCPKB_DB": str(kb_db)}, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"tcpkb serve exited: {log.read_text(errors='replace')[-1500:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("tcpkb serve did not listen within 30 s")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


@pytest.fixture(scope="session")
def served(served_log):
    """The base URL of the session's `tcpkb serve`."""
    return served_log[0]


@pytest.fixture(scope="session")
def site_base_url(kb_db, tmp_path_factory):
    """The static site, Pagefind included, built once per session under www/docs/ and served
    from www/ over loopback, so every page lives under /docs/ (as under a host's URL prefix)."""
    import functools
    import http.server
    import threading

    from tcpkb.site.generate import build_site

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

    www = tmp_path_factory.mktemp("www")
    build_site(kb_db, www / "docs")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/docs/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
