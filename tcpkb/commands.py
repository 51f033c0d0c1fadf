"""The names of tcpkb's commands and the locale's language, for the entry point that must not
import Typer (or anything heavy) to know them.

tests/test_main.py holds COMMANDS to the Typer app's commands, so the two cannot drift.
"""

# A first word that is none of these and no option is a query: `tcpkb 104`, `tcpkb TIME_WAIT`.
COMMANDS = ("errno", "signal", "state", "flag", "sysctl", "sockopt", "call", "counter", "drop", "rst",
            "resolver", "claim", "show", "explain", "doctor", "watch", "list", "search", "lint", "build", "verify", "serve",
            "site", "man", "completion")
# the commands that look one entry up: `tcpkb <command> QUERY [--json] [--brief]`
LOOKUPS = ("errno", "signal", "state", "flag", "sysctl", "sockopt", "call", "counter", "drop", "rst",
           "resolver", "claim", "show")


def default_lang() -> str:
    """The summary language a brief answer uses: Chinese when the locale is, else English."""
    import os

    for var in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        if value := os.environ.get(var):
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"
