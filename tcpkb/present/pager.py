"""A pager for answers taller than the terminal, the way git pages its output.

Only when stdout is a terminal: the answer is collected, and if it has more lines than the
screen it goes to `$TCPKB_PAGER`, else `$PAGER`, else `less` (run by the shell, with
`LESS=FRX` when LESS is unset: raw colours, no screen clearing, and quit if it fits after
all). An empty pager, `cat`, or `tcpkb --no-pager` (which sets TCPKB_PAGER=cat) prints
directly. A pipe is never paged.
"""

from __future__ import annotations

import io
import os
import sys
from contextlib import contextmanager


def pager_command() -> str | None:
    """The pager to run, or None for none."""
    for var in ("TCPKB_PAGER", "PAGER"):
        if var in os.environ:
            command = os.environ[var].strip()
            return None if command in ("", "cat") else command
    return "less"


class _Collected(io.StringIO):
    """What the answer prints, held back; it is still a terminal to whoever asks, so the
    answer is laid out and coloured for one."""

    def __init__(self, terminal):
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.terminal.fileno()

    @property
    def buffer(self):  # an answer copied as bytes goes through the same text
        return _Bytes(self)


class _Bytes:
    def __init__(self, text: _Collected):
        self.text = text

    def write(self, data: bytes) -> int:
        self.text.write(data.decode("utf-8", "replace"))
        return len(data)

    def flush(self) -> None:
        pass


@contextmanager
def paged():
    """Page what the block prints to stdout when it is taller than the terminal."""
    command = pager_command()
    terminal = sys.stdout
    if command is None or not terminal.isatty():
        yield
        return
    sys.stdout = collected = _Collected(terminal)
    try:
        yield
    except KeyboardInterrupt:  # what was printed so far, without a pager to quit
        sys.stdout = terminal
        terminal.write(collected.getvalue())
        raise
    finally:
        if sys.stdout is collected:  # the answer ended (Typer's commands end by SystemExit)
            sys.stdout = terminal
            _show(collected.getvalue(), command, terminal)


def _show(output: str, command: str, terminal) -> None:
    try:
        rows = os.get_terminal_size(terminal.fileno()).lines
    except (OSError, ValueError):
        rows = 24
    if output.count("\n") < rows:
        terminal.write(output)
        terminal.flush()
        return
    import subprocess

    env = dict(os.environ)
    env.setdefault("LESS", "FRX")
    env.setdefault("LV", "-c")  # lv, another pager, passes colours with -c
    try:
        proc = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, env=env)
    except OSError:
        terminal.write(output)
        terminal.flush()
        return
    try:
        proc.stdin.write(output.encode("utf-8", "replace"))
        proc.stdin.close()
    except BrokenPipeError:  # the reader quit the pager before the end: nothing is wrong
        pass
    while True:
        try:
            proc.wait()
            return
        except KeyboardInterrupt:  # Ctrl-C belongs to the pager while it runs, as with git
            continue
