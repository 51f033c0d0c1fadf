"""data/messages/*.json: shape, agreement with kb/errno, and regeneration from this machine."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import KB, ROOT

DATA = ROOT / "data" / "messages"
FILES = ["glibc-l10n.json", "musl.json", "libuv-windows.json"]


def _load_script():
    path = ROOT / "scripts" / "extract_messages.py"
    spec = importlib.util.spec_from_file_location("extract_messages", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("extract_messages", module)
    spec.loader.exec_module(module)
    return module


em = _load_script()


def committed(name: str) -> dict:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def _installed(package: str) -> bool:
    if shutil.which("dpkg-query") is None:
        return False
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                          capture_output=True, text=True, timeout=30, check=False)
    return proc.returncode == 0 and "installed" in proc.stdout.split()


# ---------------------------------------------------------------- (a) shape


@pytest.mark.parametrize("name", FILES)
def test_each_file_parses_and_names_a_source(name):
    data = committed(name)
    assert set(data) == {"_source", "messages"}
    assert isinstance(data["_source"], str) and data["_source"]
    assert isinstance(data["messages"], dict) and data["messages"]


def test_files_name_only_errnos_that_have_a_note():
    notes = em.errno_notes(KB)
    socket = {n for n, meta in notes.items() if meta.get("socket") is True}
    for lang, table in committed("glibc-l10n.json")["messages"].items():
        assert set(table) <= socket, lang
        for errno, text in table.items():
            assert isinstance(text, str) and text, (lang, errno)
            assert text != notes[errno]["message"], (lang, errno)
    for errno, text in committed("musl.json")["messages"].items():
        assert errno in socket
        assert isinstance(text, str) and text != notes[errno]["message"], errno
    for errno, code in committed("libuv-windows.json")["messages"].items():
        assert errno in notes
        assert isinstance(code, int) and -4095 < code < -4000, errno


def test_files_are_written_in_the_stable_format():
    for name in FILES:
        text = (DATA / name).read_text(encoding="utf-8")
        assert text == em.render(json.loads(text)), name


# ---------------------------------------------------------------- (b) regeneration


def _require(package: str, check) -> None:
    if not (_installed(package) and check()):
        pytest.skip(f"package {package} is not installed")


SOURCES = {
    "glibc-l10n.json": ("libc-l10n", lambda: any(em.LOCALE_DIR.glob("*/LC_MESSAGES/libc.mo"))),
    "musl.json": ("musl-tools", lambda: _installed("musl") and shutil.which("musl-gcc") is not None),
    "libuv-windows.json": ("libuv1-dev", lambda: em.UV_ERRNO_H.is_file()),
}


@pytest.mark.parametrize("name", FILES)
def test_regenerating_gives_the_committed_file(name, tmp_path):
    package, check = SOURCES[name]
    _require(package, check)
    text = em.render(em.GENERATORS[name](KB))
    (tmp_path / name).write_text(text, encoding="utf-8")
    assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes()


def test_the_script_writes_all_three_files_to_an_output_dir(tmp_path):
    for name in FILES:
        _require(*SOURCES[name])
    assert em.main(["--out", str(tmp_path)]) == 0
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), name


def test_a_missing_source_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(em.shutil, "which", lambda _: None)
    assert em.main(["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_missing_header_is_named():
    with pytest.raises(em.SourceMissing, match="libuv1-dev"):
        em.uv_windows_codes(Path("/nonexistent/uv/errno.h"))


# ---------------------------------------------------------------- (c) spot facts


def test_german_connection_reset():
    de = committed("glibc-l10n.json")["messages"]["de"]
    assert de["ECONNRESET"] == "Die Verbindung wurde vom Kommunikationspartner zurückgesetzt"


def test_libuv_windows_connection_reset():
    assert committed("libuv-windows.json")["messages"]["ECONNRESET"] == -4077


def test_musl_timed_out():
    assert committed("musl.json")["messages"]["ETIMEDOUT"] == "Operation timed out"
