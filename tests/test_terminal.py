"""Answers in a real terminal (tmux) fit its width and show no raw markdown; a pager takes what
is taller than the screen; a pipe gets the plain, unwrapped, stable text tcpkb.present.text
describes; search hits are marked so no text can be mistaken for them; --brief is short."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import unicodedata

import pytest

from tcpkb.present import text

from .conftest import ROOT

LOOKUPS = [
    ["errno", "ECONNRESET"],
    ["state", "CLOSE_WAIT"],
    ["sysctl", "net.ipv4.tcp_tw_reuse"],
    ["explain", "requests.exceptions.ConnectionError: ('Connection aborted.', "
                "ConnectionResetError(104, 'Connection reset by peer'))"],
    ["search", "reset"],
    ["errno", "ECONNRESET", "--brief", "--lang", "zh"],
]


def _columns(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else
               0 if unicodedata.combining(c) else 1 for c in line)


class Tmux:
    """A tmux server of the test's own (its own socket), killed at the end."""

    def __init__(self, folder, env: dict):
        self.socket = str(folder / "tmux.sock")
        self.env = env

    def tmux(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(["tmux", "-S", self.socket, "-f", "/dev/null", *args], env=self.env,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0 or not check, f"tmux {args[0]}: {done.stderr}"
        return done.stdout

    def run(self, argv: list[str], width: int, height: int = 50, extra_env: str = "") -> str:
        """The whole screen and scrollback after `tcpkb ARGV` ran in a window of that size,
        with the lines tmux itself wrapped joined again (-J): a line wider than the window
        comes back whole."""
        command = (f"cd {shlex.quote(str(self.env['HOME']))} && env -u COLUMNS -u LINES {extra_env} "
                   f"{shlex.quote(sys.executable)} -m tcpkb {shlex.join(argv)}; echo __DONE__; sleep 120")
        name = f"w{width}-{time.monotonic_ns()}"
        self.tmux("new-session", "-d", "-s", name, "-x", str(width), "-y", str(height), command)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                screen = self.tmux("capture-pane", "-p", "-J", "-S", "-", "-E", "-", "-t", name)
                if "__DONE__" in screen:
                    return screen.split("__DONE__")[0]
                time.sleep(0.1)
            pytest.fail(f"tcpkb {argv} did not finish in a {width}-column tmux window")
        finally:
            self.tmux("kill-session", "-t", name, check=False)

    def close(self) -> None:
        self.tmux("kill-server", check=False)


@pytest.fixture(scope="module")
def tmux(tmp_path_factory, kb_db):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    folder = tmp_path_factory.mktemp("tmux")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TCPKB_", "TMUX"))}
    env.update(HOME=str(folder), TERM="xterm-256color", PYTHONPATH=str(ROOT), TCPKB_DB=str(kb_db),
               XDG_CACHE_HOME=str(folder / "cache"), LANG="C.UTF-8", LC_ALL="C.UTF-8")
    env.pop("NO_COLOR", None)
    server = Tmux(folder, env)
    # a session that outlives the others: a server whose last session ends exits, and one
    # starting the next session meanwhile fails
    server.tmux("new-session", "-d", "-s", "keep", "sleep 600")
    yield server
    server.close()


@pytest.mark.parametrize("width", [60, 80, 120])
def test_answers_fit_the_terminal_and_show_no_raw_markdown(tmux, width):
    for argv in LOOKUPS:
        screen = tmux.run([*argv, "--no-pager"], width)
        lines = screen.splitlines()
        assert len([ln for ln in lines if ln.strip()]) >= 3, (argv, screen)
        wide = [ln for ln in lines if _columns(ln.rstrip()) > width]
        assert not wide, f"tcpkb {shlex.join(argv)} at {width} columns: {wide[:3]}"
        assert "**" not in screen and "`" not in screen, f"raw markdown in tcpkb {shlex.join(argv)}"
        assert "Traceback" not in screen


def test_pager_takes_only_what_is_taller_than_the_screen(tmux, tmp_path):
    paged = tmp_path / "paged.txt"
    pager = f"TCPKB_PAGER={shlex.quote('cat > ' + str(paged))}"
    tmux.run(["errno", "ECONNRESET"], 80, height=30, extra_env=pager)
    shown = paged.read_text()
    assert "ECONNRESET" in shown and "\x1b[" in shown  # laid out for the terminal, colours kept
    paged.unlink()
    screen = tmux.run(["errno", "ECONNRESET", "--brief"], 80, height=30, extra_env=pager)
    assert not paged.exists() and "ECONNRESET" in screen  # fits: printed directly
    screen = tmux.run(["errno", "ECONNRESET", "--no-pager"], 80, height=30, extra_env=pager)
    assert not paged.exists() and "Meaning" in screen
    tmux.run(["errno", "ECONNRESET"], 80, height=30, extra_env=pager + " NO_COLOR=1")
    shown = paged.read_text()  # laid out for the terminal still, without colour
    assert "Meaning" in shown and "\x1b[" not in shown
    assert max(_columns(line) for line in shown.splitlines()) <= 80


def test_pipe_is_never_paged_and_plain(tmp_path, kb_db):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TCPKB_")}
    marker = tmp_path / "paged"
    env.update(PYTHONPATH=str(ROOT), TCPKB_DB=str(kb_db), XDG_CACHE_HOME=str(tmp_path / "cache"),
               TCPKB_PAGER=f"touch {marker}; cat", COLUMNS="40")
    done = subprocess.run([sys.executable, "-m", "tcpkb", "state", "CLOSE_WAIT"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not marker.exists()
    assert "\x1b[" not in done.stdout and "**" not in done.stdout
    # unwrapped whatever COLUMNS says: the first paragraph of a section is one line
    meaning = done.stdout.split("\nMeaning\n")[1].splitlines()[0]
    assert len(meaning) > 200 and meaning.startswith("  The peer sent a FIN")


def test_plain_text_contract():
    md = ("A **bold** claim with `code **not bold**` and *emphasis*, a [link](https://x.example),\n"
          "wrapped in the source.\n\n- first item, wrapped\n  onto a second line\n"
          "  - nested\n- second item\n\n```\nss -tn  state close-wait\n```\n")
    assert text.render(md) == [
        "A bold claim with code **not bold** and emphasis, a link (https://x.example), wrapped in the source.",
        "", "- first item, wrapped onto a second line", "  - nested", "- second item", "",
        "    ss -tn  state close-wait"]
    styled = text.render(md, styled=True, width=30)
    assert all(text.visible_width(line) <= 30 for line in styled)
    joined = " ".join(styled)
    assert "\x1b[36mcode" in joined and "**not" in joined and "`" not in joined  # code keeps its text
    # SO_* and 2*MSL are no emphasis
    assert text.inline("SO_* and TCP_* options, 2*MSL", styled=False) == "SO_* and TCP_* options, 2*MSL"
    # Chinese breaks between characters, each two columns wide
    lines = text.wrap("已建立的连接被对端强行中止" * 3, 20)
    assert all(_columns(line) <= 20 for line in lines) and len(lines) == 4


def test_search_marks_hits_unmistakably(cli):
    result = cli("search", "Errno 104")
    assert result.exit_code == 0
    assert "«" in result.stdout and "[Errno 104]" in result.stdout.replace("«", "").replace("»", "")
    json_result = cli("search", "reset", "--json")
    snippets = [r["snippet"] for r in __import__("json").loads(json_result.stdout)["results"]]
    assert any("«reset»" in s.lower() for s in snippets) and not any("\x02" in s for s in snippets)


def test_explain_prints_every_piece_of_advice_whole(cli, db):
    from tcpkb.query.lookup import entry

    result = cli("explain", "read: connection reset by peer")
    assert result.exit_code == 0
    advice = result.stdout.split("what to do\n")[1].split("\n\n")[0].splitlines()
    todo = entry(db, "errno:ECONNRESET")["sections"]["what-to-do"]
    items = [" ".join(i.split()).replace("`", "") for i in todo.split("\n- ")]
    items[0] = items[0].removeprefix("- ")
    assert [line.removeprefix("    - ") for line in advice] == items


def test_brief_is_at_most_four_lines_for_every_entry(kb_db):
    """Every entry of every kind, in both languages, through the code that prints it."""
    import io
    from contextlib import redirect_stdout

    from tcpkb.present import terminal
    from tcpkb.query import lookup

    with lookup.connect(str(kb_db)) as conn:
        ids = [r[0] for r in conn.execute("select id from entries order by rowid")]
        kinds = {i.partition(":")[0] for i in ids}
        assert len(ids) > 800 and {"errno", "signal", "state", "flag", "sysctl", "sockopt", "call",
                                   "counter", "drop", "rst", "claim"} <= kinds
        for entry_id in ids:
            found = lookup.show(conn, entry_id)
            for lang in ("en", "zh"):
                out = io.StringIO()
                with redirect_stdout(out):
                    terminal.print_found(found, brief=True, lang=lang)
                lines = out.getvalue().splitlines()
                assert 2 <= len(lines) <= 4, (entry_id, lang, lines)
