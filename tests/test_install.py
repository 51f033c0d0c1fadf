"""An installed wheel carries its notes and builds its database on first use."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile

import pytest

from .conftest import ROOT


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"pip wheel failed: {proc.stderr[-2000:]}")
    (wheel,) = out.glob("tcpkb-*.whl")
    target = out / "site"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(target)
    return target, names


def test_wheel_ships_every_note(unpacked_wheel):
    _, names = unpacked_wheel
    notes = sorted(p.relative_to(ROOT / "kb").as_posix() for p in (ROOT / "kb").glob("*/*.md"))
    assert notes and all(f"tcpkb/kb/{n}" in names for n in notes)
    assert not any(n.startswith(("tests/", "data/")) for n in names)


def test_first_use_copies_the_shipped_database_then_builds_a_cache_keyed_by_content(unpacked_wheel, tmp_path):
    site, _ = unpacked_wheel
    (shipped,) = (site / "tcpkb" / "data" / "prebuilt").glob("tcpkb-*.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TCPKB_")}
    env.update(PYTHONPATH=str(site), XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONSAFEPATH="1")
    run = [sys.executable, "-c", "from tcpkb.main import main; main()", "errno", "104", "--brief"]
    first = subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    # the notes are the shipped ones: the database the wheel was built with is copied, not rebuilt
    assert "ECONNRESET" in first.stdout and "built" not in first.stderr
    (db,) = (tmp_path / "cache" / "tcpkb").glob("tcpkb-*.db")
    assert db.name == shipped.name and db.read_bytes() == shipped.read_bytes()
    assert (db.parent / (db.name + ".answers")).is_file() and (db.parent / (db.name + ".explain")).is_file()
    second = subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and second.stderr == "" and "ECONNRESET" in second.stdout
    explained = subprocess.run([*run[:3], "explain", "recv: Connection reset by peer"], env=env, cwd=tmp_path,
                               capture_output=True, text=True, timeout=60)
    assert explained.returncode == 0 and explained.stdout.startswith("errno:ECONNRESET"), explained.stderr
    # An edited note is a new key: the next lookup builds a new database and drops the old one.
    note = site / "tcpkb" / "kb" / "errno" / "ECONNRESET.md"
    note.write_text(note.read_text() + "\n")
    third = subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert third.returncode == 0 and "built" in third.stderr
    assert [p.name for p in (tmp_path / "cache" / "tcpkb").glob("tcpkb-*.db")] != [db.name]


def _tables(db) -> dict[str, list[tuple]]:
    """Every table's rows in order, but when the database was built."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    names = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table' order by name")]
    rows = {n: conn.execute(f"select * from [{n}] order by rowid").fetchall() for n in names
            if not n.startswith("search_fts_")}  # FTS5's shadow tables hold the same text
    rows["meta"] = [r for r in rows["meta"] if r[0] != "built_at"]
    conn.close()
    return rows


def test_shipped_database_is_what_the_notes_build(unpacked_wheel, tmp_path):
    """The wheel's database and its answer and explain indexes (hatch_build.py) equal a build of the checkout's
    notes and results: the first lookup's copy answers what a build would."""
    site, names = unpacked_wheel
    (shipped,) = (site / "tcpkb" / "data" / "prebuilt").glob("tcpkb-*.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TCPKB_")}
    env.update(PYTHONPATH=str(ROOT), TCPKB_KB=str(ROOT / "kb"), TCPKB_RESULTS=str(ROOT / "data" / "verify"),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", "import sys; from tcpkb.answer import prebuild; "
                           "print(prebuild(sys.argv[1]))", str(tmp_path)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    built = done.stdout.split()[-1]
    assert os.path.basename(built) == shipped.name  # named for the same content
    ours, theirs = _tables(shipped), _tables(built)
    assert ours.keys() == theirs.keys()
    for table in ours:
        assert ours[table] == theirs[table], table

    def index(path) -> tuple[list[bytes], bytes]:
        with open(path, "rb") as f:
            header = f.readline().split()
            return header[:2] + header[3:], f.read()  # not the file's stamp

    for suffix in (".answers", ".explain"):
        assert index(f"{shipped}{suffix}") == index(f"{built}{suffix}"), suffix


def test_wheel_ships_the_web_faces(unpacked_wheel, tmp_path):
    """The templates, assets and layout travel in the wheel; both faces work from it."""
    site, names = unpacked_wheel
    for shipped in ("tcpkb/web/metadata.yaml", "tcpkb/web/templates/tcpkb_entry.html",
                    "tcpkb/web/templates/tcpkb.css", "tcpkb/present/templates/tcpkb_article.html",
                    "tcpkb/site/templates/entry.html", "tcpkb/site/assets/site.css",
                    "tcpkb/site/layout/states.json"):
        assert shipped in names
    assert not any(n.startswith("tcpkb/site/_build") for n in names)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TCPKB_")}
    env.update(PYTHONPATH=str(site), XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONSAFEPATH="1")
    script = """
import asyncio, sys
from tcpkb.answer import ensure_db
from tcpkb.paths import site_dir
from tcpkb.web.serve import make_datasette
from tcpkb.site.generate import build_site
assert site_dir().startswith(sys.argv[1]), site_dir()
db = ensure_db()
print(build_site(db, sys.argv[2], search=False)["entries"])
ds = make_datasette(db)
async def page():
    await ds.invoke_startup()
    return (await ds.client.get("/errno/104")).text
print("ECONNRESET" in asyncio.run(page()))
"""
    done = subprocess.run([sys.executable, "-c", script, str(site), str(tmp_path / "out")], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    entries, found = done.stdout.split()
    assert int(entries) > 300 and found == "True"
    assert (tmp_path / "out" / "errno" / "ECONNRESET" / "index.html").is_file()


def _quick_start_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TCPKB_", "PIPX_", "VIRTUAL_ENV", "PYTHON"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _first_lookup(tcpkb: str, env: dict, tmp_path) -> subprocess.CompletedProcess:
    """`tcpkb errno 104` as the quick start's last step, outside any checkout, with a fresh cache."""
    env = {**env, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    return subprocess.run([tcpkb, "errno", "104"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def test_quick_start_in_a_venv(tmp_path):
    """The quick start's first command, where only a virtualenv may be installed into."""
    env = _quick_start_env(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(ROOT)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    found = _first_lookup(str(venv / "bin" / "tcpkb"), env, tmp_path)
    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith("ECONNRESET  errno 104  Connection reset by peer")


def test_quick_start_with_pipx(unpacked_wheel, tmp_path):
    """`pipx install` puts tcpkb on PATH (here a PATH of the test's own) in an environment of
    its own: the quick start where only pipx is allowed. It installs the wheel this module
    built from the checkout (what `pipx install .` builds first), to build it only once."""
    pipx = shutil.which("pipx")
    if pipx is None:
        pytest.skip("pipx is not installed (apt-get install pipx)")
    env = _quick_start_env(tmp_path)
    env.update(PIPX_HOME=str(tmp_path / "pipx"), PIPX_BIN_DIR=str(tmp_path / "bin"),
               PIPX_MAN_DIR=str(tmp_path / "man"))
    site, _ = unpacked_wheel
    (wheel,) = site.parent.glob("tcpkb-*.whl")
    done = subprocess.run([pipx, "install", "--force", "--python", sys.executable, str(wheel)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    found = _first_lookup(str(tmp_path / "bin" / "tcpkb"), env, tmp_path)
    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith("ECONNRESET  errno 104  Connection reset by peer")
