"""`tcpkb doctor`: what is wrong with the TCP sockets of a machine, read through the notes.

What it reads (one *reading*, see doctor.sources):
- this network namespace (the default): /proc/net/tcp and tcp6, the counters of
  /proc/net/netstat and snmp, the knobs and the ephemeral port range;
- another one (`--netns NAME|PID|PATH`), or every one with TCP sockets (`--all`): a forked
  child joins it with setns() and reads the same files there (doctor.namespaces);
- a saved dump (`--from DIR`): an sosreport or plain files of ss, nstat, netstat -s and
  sysctl -a (doctor.dump).

doctor.scan sums a reading up; doctor.findings reads that through the notes;
doctor.report prints it or gives its JSON; doctor.prometheus gives Prometheus metrics.
Nothing here writes to the machine; reads that are not permitted are skipped.
"""

from __future__ import annotations

import sqlite3
import sys
import time

from ..present import terminal as output
from ..query import lookup
from . import namespaces, sources
from .findings import ORPHANS, PILE, SEVERITIES, TIME_WAIT_SHARE, findings, status
from .report import TOP_PORTS, print_dump, print_group, print_namespace, print_report, report
from .scan import knob_names, ss_states, state_table, summarize
from .sources import COUNTERS, counters, owners, sockets

# what callers and tests use by its old name, tcpkb.doctor.X, from before doctor was a package
__all__ = ["COUNTERS", "ORPHANS", "PILE", "SEVERITIES", "TIME_WAIT_SHARE", "TOP_PORTS", "counters",
           "findings", "main", "owners", "print_report", "report", "scan", "sockets", "state_table",
           "status"]


def _open_db() -> sqlite3.Connection:
    from ..answer import ensure_db

    return lookup.connect(ensure_db())


def scan(conn: sqlite3.Connection | None = None) -> dict:
    """Read the sockets, queues, counters and knobs of the current network namespace."""
    own = conn is None
    if own:
        conn = _open_db()
    try:
        return summarize(sources.live(knob_names(conn)), conn)
    finally:
        if own:
            conn.close()


# --- what one round reads ------------------------------------------------------------------------

def _public(ns: dict) -> dict:
    return {k: ns[k] for k in ("label", "name", "inode", "path", "pid", "comm")}


def _metric_label(ns: dict) -> str:
    """A namespace's name, else its inode: stable while it lives, unlike the pids in it."""
    return ns["name"] or f"net:[{ns['inode']}]"


def _read_one(conn: sqlite3.Connection, netns: str | None, from_: str | None) -> list[dict]:
    """[{"ns" | "dump", "scan", "findings"}] for the default, --netns or --from."""
    from ..machine.netns import IsolationError

    if from_ is not None:
        from .dump import BadDump, read_dump

        try:
            reading = read_dump(from_, knob_names(conn), ss_states(conn))
        except BadDump as e:
            raise lookup.BadQuery(str(e)) from None
        return [{"dump": from_, "files": reading["files"], "scan": summarize(reading, conn)}]
    if netns is None:
        return [{"ns": namespaces.current(), "scan": scan(conn)}]
    try:
        ns = namespaces.resolve(netns)
        return [{"ns": ns, "scan": summarize(sources.in_namespace(ns, knob_names(conn)), conn)}]
    except (namespaces.NoNamespace, IsolationError) as e:
        raise lookup.BadQuery(str(e)) from None


def _read_all(conn: sqlite3.Connection) -> tuple[list[dict], list[dict]]:
    """Every namespace with TCP sockets; and the ones skipped (no sockets, or unreadable)."""
    from ..machine.netns import IsolationError

    from ..machine.live import knob_entries

    knobs, entries, found, skipped = knob_names(conn), None, [], []
    for ns in namespaces.every():
        try:
            reading = sources.in_namespace(ns, knobs)
        except IsolationError as e:  # gone since it was listed, or not enterable
            skipped.append({**_public(ns), "why": str(e)})
            continue
        if not reading["rows"]:
            skipped.append({**_public(ns), "why": "no TCP sockets"})
            continue
        entries = entries or knob_entries(conn)
        found.append({"ns": ns, "scan": summarize(reading, conn, entries)})
    return found, skipped


# --- what one round shows ---------------------------------------------------------------------

def _show(groups: list[dict], skipped: list[dict] | None, as_json: bool, many: bool,
          prometheus: bool, output_path: str | None) -> None:
    if prometheus:
        from . import prometheus as prom

        scans = [(_metric_label(g["ns"]) if "ns" in g else "", g["scan"], g["findings"]) for g in groups]
        if output_path is None:
            sys.stdout.write(prom.text(scans))
            return
        try:
            prom.write(output_path, scans)
        except OSError as e:
            raise lookup.BadQuery(f"cannot write {output_path}: {e.strerror or e}") from None
        return
    if as_json:
        output.print_json(_json(groups, skipped, many))
        return
    for g in groups:
        if "dump" in g:
            print_dump(g["dump"], g["files"], g["scan"], g["findings"])
        elif skipped is not None:
            print_group(g["ns"], g["scan"], g["findings"])
            output.echo()
        elif many:
            print_namespace(g["ns"], g["scan"], g["findings"])
        else:
            print_report(g["scan"], g["findings"])
    if skipped is not None:
        output.echo(output.dim(f"{len(groups)} namespace(s) with TCP sockets; {len(skipped)} more "
                               "without any or not readable (--json lists them with the reason)"))


def _json(groups: list[dict], skipped: list[dict] | None, many: bool) -> dict:
    def one(g: dict) -> dict:
        r = report(g["scan"], g["findings"])
        if "dump" in g:
            return {"from": g["dump"], "files": g["files"], **r}
        return {"netns": _public(g["ns"]), **r} if many or skipped is not None else r

    if skipped is not None:
        return {"namespaces": [one(g) for g in groups], "skipped": skipped}
    return one(groups[0])


def _bad_usage(watch, times, netns, all_, from_, prometheus, as_json, output_path) -> str | None:
    if watch is not None and watch <= 0:
        return "--watch takes a number of seconds above 0"
    if times is not None and times < 1:
        return "--times takes a count of 1 or more"
    if sum(x is not None and x is not False for x in (netns, all_ or None, from_)) > 1:
        return "give one of --netns, --all and --from"
    if from_ is not None and watch is not None:
        return "--watch reads the live machine again and again; a saved dump does not change"
    if prometheus and as_json:
        return "give --json or --prometheus, not both"
    if output_path is not None and not prometheus:
        return "--output writes the --prometheus text (for a textfile collector); add --prometheus"
    return None


def main(as_json: bool = False, watch: float | None = None, times: int | None = None,
         netns: str | None = None, all_: bool = False, from_: str | None = None,
         prometheus: bool = False, output_path: str | None = None) -> int:
    """Scan, print, and exit 0 when nothing is a problem or a warning, 1 otherwise (2 bad usage)."""
    if why := _bad_usage(watch, times, netns, all_, from_, prometheus, as_json, output_path):
        output.fail(why)
        return 2
    from .. import answer

    last: dict = {"status": 0, "counters": None}

    def once(conn: sqlite3.Connection) -> None:
        skipped = None
        if all_:
            groups, skipped = _read_all(conn)
        else:
            groups = _read_one(conn, netns, from_)
        previous = last["counters"] or {}
        for g in groups:  # a counter that moved since the last round warns (see findings())
            key = g["ns"]["inode"] if "ns" in g else g["dump"]
            g["findings"] = findings(g["scan"], conn, previous.get(key) if last["counters"] else None)
        last["status"] = max([status(g["findings"]) for g in groups], default=0)
        last["counters"] = {g["ns"]["inode"] if "ns" in g else g["dump"]: g["scan"]["counters"]
                            for g in groups}
        _show(groups, skipped, as_json, netns is not None, prometheus, output_path)

    def action(conn: sqlite3.Connection) -> None:
        rounds = 0
        tty = sys.stdout.isatty()
        while True:
            if watch is not None and tty and not as_json and not prometheus:
                sys.stdout.write("\x1b[H\x1b[2J")
            once(conn)
            rounds += 1
            if watch is None or (times is not None and rounds >= times):
                return
            if not as_json and not prometheus:
                output.echo(output.dim(f"every {watch:g}s; Ctrl-C ends"))
            sys.stdout.flush()
            time.sleep(watch)

    try:
        code = answer.run(action, as_json)
    except KeyboardInterrupt:
        return last["status"]
    return code or last["status"]
