"""doctor's report: the JSON shape of --json, and the text a terminal shows."""

from __future__ import annotations

from ..present import terminal as output

TOP_PORTS = 10


def report(scan_: dict, found: list[dict]) -> dict:
    """The JSON shape of `tcpkb doctor --json` for one namespace or dump."""
    return {"states": scan_["states"], "ports": scan_["ports"], "listeners": scan_["listeners"],
            "counters": scan_["counters"], "knobs": scan_["knobs"], "findings": found}



def _owner(o: dict | None) -> str:
    return f"pid {o['pid']} {o['comm'] or ''}".rstrip() if o else ""


def print_report(scan_: dict, found: list[dict]) -> None:
    echo, bold, dim, style = output.echo, output.bold, output.dim, output.style
    pr = scan_.get("port_range")
    echo(bold(f"{scan_['total']} TCP sockets")
         + dim(f"  (ephemeral ports {pr['low']}-{pr['high']}: {pr['size']})" if pr else ""))
    for sid, n in scan_["states"].items():
        echo(f"  {n:>7}  {sid.split(':', 1)[-1]}")
    if scan_["ports"]:
        echo()
        echo(bold("Top local ports"))
        for p in scan_["ports"][:TOP_PORTS]:
            by_state = ", ".join(f"{sid.split(':', 1)[-1]} {n}" for sid, n in
                                 sorted(p["states"].items(), key=lambda kv: -kv[1]))
            owners_ = ", ".join(_owner(o) for o in p["owners"][:3])
            echo(f"  {p['port']:>5}  {p['total']:>6}  {by_state}" + (dim(f"  {owners_}") if owners_ else ""))
    if scan_["listeners"]:
        echo()
        echo(bold("Listeners") + dim("  (accept queue: connections waiting for accept())"))
        for x in scan_["listeners"]:
            q = x["accept_queue"]
            queue = style(f"queue {q}", "33") if q else dim("queue 0")
            echo(f"  {x['address']}:{x['port']}  {queue}" + (dim(f"  {_owner(x['owner'])}") if x["owner"] else ""))
    loud = {k: v for k, v in scan_["counters"].items() if v}
    if loud:
        echo()
        echo(bold("Counters") + dim("  (since boot or since the namespace was made; nstat -az)"))
        for k, v in loud.items():
            echo(f"  {k:<28} {v}")
    echo()
    print_findings(found)


def print_findings(found: list[dict], explain: bool = True) -> None:
    echo, bold, dim, style, accent = output.echo, output.bold, output.dim, output.style, output.accent
    if not found:
        echo(style("no findings", "32"))
    colours = {"problem": "31", "warning": "33", "info": "2"}
    for f in found:
        echo(f"{style(f['severity'].upper(), '1', colours[f['severity']])}  {accent(f['id'])}  {bold(f['title'])}")
        echo(f"  {f['detail']}")
        if explain:
            echo(f"  {f['explain']}")
        echo(f"  {dim('read')} {', '.join(f['read'])}")
        if f.get("from") and not f["from"][0].startswith("/proc/"):
            echo(f"  {dim('from')} {', '.join(f['from'])}")
    bad = sum(f["severity"] in ("problem", "warning") for f in found)
    echo(dim(f"{bad} problem(s) or warning(s), {len(found) - bad} note(s)"))


def _heading(ns: dict) -> str:
    return (output.bold(f"== network namespace {ns['label']}")
            + output.dim(f"  (inode {ns['inode']})" if ns.get("name") else ""))


def print_namespace(ns: dict, scan_: dict, found: list[dict]) -> None:
    """The namespace of `--netns`: a heading naming it, then its full report."""
    output.echo(_heading(ns))
    print_report(scan_, found)


def print_group(ns: dict, scan_: dict, found: list[dict]) -> None:
    """One namespace of `--all`, short: its heading, its sockets per state, its findings."""
    output.echo(_heading(ns))
    output.echo(f"{scan_['total']} TCP sockets: " + ", ".join(
        f"{sid.split(':', 1)[-1]} {n}" for sid, n in scan_["states"].items()))
    print_findings(found, explain=False)


def print_dump(top: str, files: dict, scan_: dict, found: list[dict]) -> None:
    """A saved dump: which file gave what, then its report with each finding's files."""
    output.echo(output.bold(f"== saved dump {top}"))
    for kind, paths in sorted(files.items()):
        output.echo(output.dim(f"  {kind:<14} {', '.join(paths)}"))
    print_report(scan_, found)
