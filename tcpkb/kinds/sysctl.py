"""sysctl: kernel knobs by full name, /proc/sys path, short name or a pasted sysctl.conf line."""

from __future__ import annotations

import re

from .. import kernels
from .base import Field, Hit, Kind, NotFound, by_name, clean, fact, kernels_text, suggest, versioned_fact

TYPES = ("integer", "boolean", "mode", "vector", "string", "bitmap")


class Sysctl(Kind):
    live_answer = True  # the answer carries the live value
    name = "sysctl"
    plural = "Sysctls"
    intro = ("Kernel knobs under /proc/sys that change how TCP sockets behave. The default is what a "
             "fresh network namespace shows (or the boot value, for a knob that has one value for "
             "the whole machine); where kernels differ, each value is given with its kernels.")
    fields = {
        **Kind.fields,
        "type": Field("str", required=True, choices=TYPES),
        "unit": Field("str_or_null"),
        "range": Field("str_or_null", versioned=True),
        "default": Field("value_or_null", required=True, versioned=True),
        "computed": Field("str_or_null"),
        "per_netns": Field("bool", required=True, versioned=True),
        "inherited": Field("bool"),
        "since": Field("release"),
        "absent_on": Field("range"),
        "module": Field("str_or_null"),
        "noop_since": Field("str_or_null"),
        "removed_in": Field("str_or_null"),
    }
    sections = ("Meaning", "Values", "Traps", "Where the docs differ", "What to do", "How to see it")
    required_sections = ("Meaning", "What to do")
    command_help = "Look up a sysctl knob, with this machine's live value beside the default."
    query_help = ("net.ipv4.tcp_fin_timeout, tcp_fin_timeout, /proc/sys/net/ipv4/tcp_fin_timeout, "
                  "or a sysctl.conf line")
    table = "sysctls"
    kernel_facts = ("default", "range", "per_netns", "exists")
    columns = {"id": "text", "name": "text", "type": "text", "unit": "text", "range": "text",
               "default": "text", "computed": "text", "per_netns": "boolean", "inherited": "boolean",
               "since": "text", "absent_on": "text", "module": "text", "noop_since": "text",
               "removed_in": "text", "path": "text"}
    descriptions = {"sysctls": ("Sysctl knobs: type, unit, accepted range, default, scope, and the "
                                "kernels that added or removed them.", {
        "type": "integer, boolean, mode, vector, string or bitmap",
        "unit": "seconds, milliseconds, bytes, pages, packets …",
        "range": "the values the newest kernel accepts, min..max (per kernel: facts_by_kernel)",
        "default": "what /proc/sys prints in a fresh namespace on the newest kernel described; "
                   "null when computed or removed (per kernel: facts_by_kernel)",
        "computed": "what a machine-dependent default is computed from",
        "per_netns": "1 if each network namespace has its own value",
        "inherited": "1 if a new namespace starts from the host's current value",
        "since": "the kernel release that added it, if after 6.1",
        "absent_on": "kernels verified to lack it, as a range (<=6.12), where the release that added it is not known",
        "module": "the kernel module that provides it: the file exists only while it is loaded",
        "noop_since": "the release since which it exists but does nothing",
        "removed_in": "the release that removed it", "path": "its file under /proc/sys"})}

    def lint(self, meta: dict) -> list[tuple[str, str, str]]:
        """A knob's default, computed rule and removal must tell one story."""
        out = []
        if meta.get("default") is None and not meta.get("computed") and not meta.get("removed_in"):
            out.append(("default", "KB016", "default is null: say how it is `computed`, or when it was `removed_in`"))
        if meta.get("removed_in") and meta.get("default") is not None:
            out.append(("default", "KB016", "a removed knob has no default on this kernel: set default to null"))
        if meta.get("removed_in") and meta.get("noop_since"):
            out.append(("noop_since", "KB016", "a knob is either removed or a no-op, not both"))
        return out

    def search_boost(self, meta: dict) -> float:
        return 1.0

    def rows(self, note, ctx) -> dict[str, list[dict]]:
        rows = super().rows(note, ctx)
        row = rows["sysctls"][0]
        for field in ("default", "range", "per_netns"):  # the newest kernel's value; the rest by kernel
            row[field] = kernels.pick(row[field], None)
        row["per_netns"] = bool(row["per_netns"])
        row["inherited"] = bool(row["inherited"])
        row["path"] = "/proc/sys/" + note.meta["name"].replace(".", "/")
        return rows

    def json(self, conn, entry_id: str) -> dict:
        r = conn.execute("select * from sysctls where id = ?", (entry_id,)).fetchone()
        return {k: r[k] for k in ("type", "unit", "range", "default", "computed")} | {
            "per_netns": bool(r["per_netns"]), "inherited": bool(r["inherited"]), "since": r["since"],
            "absent_on": r["absent_on"], "module": r["module"],
            "noop_since": r["noop_since"], "removed_in": r["removed_in"], "proc_path": r["path"]}

    def find(self, conn, query: str) -> Hit:
        """A knob by full name, path or short name (tcp_fin_timeout); a pasted value is weighed."""
        name, value = sysctl_name(query)
        notes = []
        entry_id = by_name(conn, "sysctl", name)
        if entry_id is None:  # a short name: the last component, net.ipv4 first
            rows = conn.execute(
                "select id from sysctls where lower(substr(name, -length(?1) - 1)) = '.' || lower(?1) "
                "order by substr(name, 1, 9) != 'net.ipv4.', name", (name,)).fetchall()
            if not rows:
                raise NotFound(f"no sysctl {name!r} in the knowledge base", suggest(conn, name, "sysctl"))
            entry_id = rows[0][0]
            if len(rows) > 1:
                notes.append(f"{name} is also " + ", ".join(r[0] for r in rows[1:]))
        if value is not None:  # a pasted sysctl.conf line: say how its value stands
            default = conn.execute("select \"default\" from sysctls where id = ?", (entry_id,)).fetchone()[0]
            verdict = ("the default" if default is not None and value.split() == default.split()
                       else f"not the default {default}" if default is not None else "the default is computed")
            notes.insert(0, f"the text sets {entry_id.split(':', 1)[1]} to {value} ({verdict})")
        return Hit(entry_id, notes)

    def facts(self, e: dict) -> list[dict]:
        rows = [fact("Type", e["type"] + (f", {e['unit']}" if e["unit"] else ""))]
        rows += [f for f in (versioned_fact("Range", e, "range"), versioned_fact("Default", e, "default"))
                 if f]
        if e["computed"]:
            rows.append(fact("Computed from", e["computed"]))
        scope = versioned_fact("Namespace", e, "per_netns", lambda v: _scope(v, e["inherited"]))
        rows.append(scope)
        if e["since"]:
            rows.append(fact("Added", f"in Linux {e['since']}: absent on older kernels"))
        if e["module"]:
            rows.append(fact("Module", f"{e['module']}: the file exists only while the module is loaded"))
        if e["absent_on"]:
            rows.append(fact("Absent", f"on {kernels_text([e['absent_on']])}: the file does not exist there"))
        if e["noop_since"]:
            rows.append(fact("No effect", f"since Linux {e['noop_since']}: the file exists but does nothing"))
        if e["removed_in"]:
            rows.append(fact("Removed", f"in Linux {e['removed_in']}: writing it fails"))
        else:
            rows.append(fact("File", e["proc_path"]))
        return rows

    def headline(self, e: dict) -> list:
        if e["removed_in"]:
            return [("sysctl", None), (f"REMOVED in {e['removed_in']}", "bad"), (e["title"], "bold")]
        default = e["default"] if e["default"] is not None else "computed"
        return [(f"sysctl {e['type']}  default {default}", None), (e["title"], "bold")]

    def list_columns(self, e: dict) -> list:
        default = (e["default"] if e["default"] is not None else
                   f"from {e['computed']}" if e["computed"] else "")
        return [("Default", [default]), ("Type", [e["type"] + (f", {e['unit']}" if e["unit"] else "")]),
                ("Per namespace", ["yes" if e["per_netns"] else "no"]),
                ("Removed in", [e["removed_in"] or ""]), ("Title", [e["title"]])]


def _scope(per_netns, inherited: bool) -> str:
    if per_netns in (False, "False", "0", 0):
        return "one value for the whole machine"
    return ("one per network namespace, starting from the host's current value" if inherited
            else "one per network namespace")


def sysctl_name(query: str) -> tuple[str, str | None]:
    """What people paste -> a dotted name, and a value if the text set one.

    net.ipv4.tcp_fin_timeout, net/ipv4/tcp_fin_timeout, /proc/sys/net/ipv4/tcp_fin_timeout,
    `sysctl -w net.ipv4.tcp_fin_timeout=30`, `net.ipv4.tcp_fin_timeout = 30` (sysctl.conf).
    """
    text = clean(query)
    text = re.sub(r"^sysctl(\s+-[a-zA-Z]+)*\s+", "", text)
    name, eq, value = text.partition("=")
    name = name.strip().removeprefix("/proc/sys/").strip("/").replace("/", ".")
    return name, (" ".join(value.split()) or None) if eq else None


KIND = Sysctl()
