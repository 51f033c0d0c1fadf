"""Regenerate the CLI's shipped texts from the Typer app: tcpkb/cli_help.txt (what `tcpkb --help`
prints at 80 columns and on a pipe, served without importing Typer) and man/tcpkb.1 (the
manual page, installed to share/man/man1).

    python scripts/gen_cli_docs.py [--check]

tests/test_conventions.py fails when either differs from what the app generates now.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def generated() -> dict[Path, str]:
    import typer
    from typer.testing import CliRunner

    from tcpkb.cli import app
    from tcpkb.present.manpage import manpage

    result = CliRunner().invoke(app, ["--help"], prog_name="tcpkb", env={"COLUMNS": "80"})
    return {ROOT / "tcpkb" / "cli_help.txt": result.stdout,
            ROOT / "man" / "tcpkb.1": manpage(typer.main.get_command(app))}


def main() -> int:
    check = "--check" in sys.argv[1:]
    stale = []
    for path, text in generated().items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if check else 'wrote'} {path.relative_to(ROOT)}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
