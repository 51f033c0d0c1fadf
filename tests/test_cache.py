"""The database cache: keyed by content, shared safely, repaired, and honest when it cannot work.

Each test runs the real entry point in a fresh process against the small fixture notes, outside
any checkout (TCPKB_KB names the notes), with a cache of its own."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from .conftest import FIXTURES, ROOT


@pytest.fixture
def home(tmp_path):
    """(run, cache folder): `run(*args)` is tcpkb with the fixture notes and this cache."""
    kb = tmp_path / "kb"
    shutil.copytree(FIXTURES / "lint" / "base", kb)
    (tmp_path / "results").mkdir()
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TCPKB_")}
    env.update(TCPKB_KB=str(kb), TCPKB_RESULTS=str(tmp_path / "results"), XDG_CACHE_HOME=str(cache),
               PYTHONPATH=str(ROOT))

    def run(*args: str, umask: int = 0o022, **extra) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tcpkb", *args], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path, env={**env, **extra},
                              preexec_fn=lambda: os.umask(umask))

    return run, cache / "tcpkb", kb


def _dbs(folder) -> list:
    return sorted(folder.glob("tcpkb-*.db"))


def test_the_key_is_content_not_mtimes_and_other_installs_keep_theirs(home):
    run, cache, kb = home
    first = run("errno", "EAGAIN", "--brief")
    assert first.returncode == 0 and "built" in first.stderr
    (db,) = _dbs(cache)
    note = kb / "errno" / "EAGAIN.md"
    os.utime(note, (1, 1))  # a reinstall rewrites files with new times: not a new key
    again = run("errno", "EAGAIN", "--brief")
    assert again.returncode == 0 and again.stderr == "" and _dbs(cache) == [db]
    note.write_text(note.read_text() + "\n")  # other notes: another database beside the first
    other = run("errno", "EAGAIN", "--brief")
    assert other.returncode == 0 and "built" in other.stderr
    assert db in _dbs(cache) and len(_dbs(cache)) == 2


def test_files_respect_the_umask(home):
    run, cache, _ = home
    assert run("errno", "EAGAIN", umask=0o022).returncode == 0
    (db,) = _dbs(cache)
    assert stat.S_IMODE(db.stat().st_mode) == 0o644
    assert stat.S_IMODE((cache / (db.name + ".answers")).stat().st_mode) == 0o644
    for f in cache.iterdir():
        f.unlink()
    assert run("errno", "EAGAIN", umask=0o077).returncode == 0
    assert stat.S_IMODE(_dbs(cache)[0].stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere: a read-only cache needs another user")
def test_an_unwritable_cache_uses_a_temporary_database_with_one_warning(home):
    run, cache, _ = home
    cache.mkdir(parents=True)
    cache.chmod(0o500)
    try:
        done = run("errno", "EAGAIN", "--brief")
    finally:
        cache.chmod(0o700)
    assert done.returncode == 0 and "EAGAIN" in done.stdout
    assert done.stderr.count("\n") == 1 and "temporary database" in done.stderr


def test_a_cache_that_is_a_file_uses_a_temporary_database_with_one_warning(home, tmp_path):
    """The same failure for root too: the cache folder cannot be made."""
    run, cache, _ = home
    cache.parent.mkdir(parents=True)
    cache.write_text("not a folder")
    (tmp_path / "tmp").mkdir()
    done = run("errno", "EAGAIN", "--brief", TMPDIR=str(tmp_path / "tmp"))
    assert done.returncode == 0 and "EAGAIN" in done.stdout, done.stderr
    assert done.stderr.count("\n") <= 1 and "Traceback" not in done.stderr
    assert list((tmp_path / "tmp").glob(f"tcpkb-{os.getuid()}/tcpkb-*.db"))


@pytest.mark.parametrize("as_json", [False, True])
def test_a_corrupt_cache_is_rebuilt_once_with_a_message(home, as_json):
    run, cache, _ = home
    assert run("errno", "EAGAIN").returncode == 0
    (db,) = _dbs(cache)
    db.write_bytes(b"this is not a database" * 100)
    args = ["errno", "EAGAIN", *(["--json"] if as_json else [])]
    done = run(*args)
    assert done.returncode == 0 and "could not be read" in done.stderr and "built" in done.stderr
    if as_json:
        assert json.loads(done.stdout)["id"] == "errno:EAGAIN"
    assert run(*args).stderr == ""  # repaired: the next lookup says nothing


def test_an_unreadable_named_database_is_one_json_error(home, tmp_path):
    run, _, _ = home
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"garbage" * 1000)
    done = run("errno", "EAGAIN", "--json", TCPKB_DB=str(bad))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "error" in json.loads(done.stdout) and bad.read_bytes().startswith(b"garbage")  # never replaced


def test_checkout_mode_uses_the_checkouts_notes_and_says_so_once(tmp_path):
    """A folder with this project's kb/README.md above cwd is a checkout, installed or not."""
    checkout = tmp_path / "checkout"
    shutil.copytree(FIXTURES / "lint" / "base", checkout / "kb")
    shutil.copy(ROOT / "kb" / "README.md", checkout / "kb" / "README.md")
    (checkout / "data" / "verify").mkdir(parents=True)
    (checkout / "deep" / "er").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TCPKB_")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))

    def run(*args, **extra):
        return subprocess.run([sys.executable, "-m", "tcpkb", *args], capture_output=True, text=True,
                              timeout=120, cwd=checkout / "deep" / "er", env={**env, **extra})

    first = run("errno", "EAGAIN", "--brief")
    assert first.returncode == 0 and f"in the checkout {checkout}" in first.stderr
    assert (checkout / "data" / "tcpkb.db").exists()
    second = run("errno", "EAGAIN", "--brief")
    assert second.returncode == 0 and second.stderr == ""  # said once
    note = checkout / "kb" / "errno" / "EAGAIN.md"
    note.write_text(note.read_text() + "\n")
    stale = run("errno", "EAGAIN", "--brief")
    assert "has changed" in stale.stderr and "tcpkb build" in stale.stderr
    assert run("build").returncode == 0
    assert run("errno", "EAGAIN", "--brief").stderr == ""  # the advised command cleared it
    assert run("errno", "ECONNRESET").returncode == 0
    # --kb and TCPKB_KB choose other notes: the real ones, which have SIGPIPE
    assert run("--kb", str(ROOT / "kb"), "signal", "SIGKILL", "--brief").returncode == 0
    assert run("signal", "SIGKILL", TCPKB_KB=str(ROOT / "kb")).returncode == 0
    assert run("signal", "SIGKILL").returncode == 1
