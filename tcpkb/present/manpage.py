"""tcpkb(1): the manual page in roff, generated from the Click command tree Typer builds, so the
page and `--help` cannot say different things."""

from __future__ import annotations



def _roff(text: str) -> str:
    """Text safe in roff: backslashes doubled, a leading dot or quote escaped."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line[:1] in (".", "'") else line for line in text.splitlines())


def _options(command) -> list[str]:
    out = []
    for p in command.params:
        if getattr(p, "hidden", False):
            continue
        if p.param_type_name == "argument":
            out += [".TP", f".I {p.human_readable_name.upper()}", _roff(getattr(p, "help", None) or "")]
            continue
        flags = ", ".join(p.opts + p.secondary_opts)
        out += [".TP", f".B {_roff(flags)}", _roff(p.help or "")]
    return out


def _name_line(help_text: str) -> str:
    """'the failures people meet on TCP sockets on Linux' from the app's first clause."""
    first = help_text.split(":")[0].split(".")[0]
    return first[:1].lower() + first[1:]


def manpage(group, version: str | None = None) -> str:
    """The whole page: NAME, SYNOPSIS, DESCRIPTION, OPTIONS, a section per command, EXIT STATUS,
    ENVIRONMENT and FILES."""
    from .. import __version__

    lines = [f'.TH TCPKB 1 "" "tcpkb {version or __version__}" "User Commands"',
             ".SH NAME", "tcpkb \\- " + _roff(_name_line(group.help)),
             ".SH SYNOPSIS", ".B tcpkb", "[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...", ".br",
             ".B tcpkb", "\\fIQUERY\\fR", ".SH DESCRIPTION", _roff(group.help), ".SH OPTIONS",
             *_options(group), ".SH COMMANDS"]
    for name, command in group.commands.items():
        if command.hidden:
            continue
        lines += [".SS " + _roff(f"tcpkb {name}"), _roff(command.help or ""), *_options(command)]
    lines += [".SH EXIT STATUS", "0 found, 1 not found (the closest matches go to stderr), 2 bad usage.",
              ".SH ENVIRONMENT", ".TP", ".B TCPKB_KB", "The notes to use (as \\-\\-kb).", ".TP",
              ".B TCPKB_DB", "The database to read.", ".TP", ".B NO_COLOR", "No colour on a terminal.",
              ".TP", ".B PAGER", "The pager for long answers on a terminal (default: less \\-R).",
              ".SH FILES", ".TP", ".I ~/.cache/tcpkb/", "Databases built on first use, one per content of the notes.",
              ".TP", ".I kb/ and data/tcpkb.db", "In a checkout: its notes and its database."]
    return "\n".join(lines) + "\n"
