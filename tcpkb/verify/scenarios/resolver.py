"""What getaddrinfo() returns for each answer a name server can give: every scenario runs its own
DNS responder on 127.0.0.1:53 inside its namespace and points /etc/resolv.conf at it (in a
private mount namespace), so no real resolver is ever asked. The lookups run in a fresh Python
process, which reads the configuration anew and prints the gaierror people paste."""

from __future__ import annotations

import ctypes
import json
import socket
import subprocess
import sys
import time

from ... import sources
from ...machine.netns import add_ipv4
from .. import check, scenario
from ..dns import Responder, ResolverUnavailable, private_resolver
from ..lab import Skip
from .checks import _entries, _verdict

# bounded: one try of one second per query, so silence costs a second and not ten
RESOLV_CONF = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
TIMEOUT_S = 1.0
CHILD_S = 8.0  # a lookup process that outlives this is killed (a kernel VM starts Python slowly)

# Run in the child Python: each lookup's code, message, repr and duration as one JSON line.
LOOKUPS = r"""
import json, socket, sys, time
for host, port, family, type_, flags in json.loads(sys.argv[1]):
    began = time.monotonic()
    try:
        socket.getaddrinfo(host, port, family, type_, 0, flags)
        out = {"code": 0, "message": "", "printed": ""}
    except socket.gaierror as e:
        out = {"code": e.errno, "message": e.strerror, "printed": f"socket.gaierror: {e}"}
    out["seconds"] = round(time.monotonic() - began, 3)
    print(json.dumps(out), flush=True)
"""


# Run in the child Python: with every descriptor the limit allows in use, getaddrinfo() through
# the C library (its raw code and errno) and through Python (what it raises). The idna codec
# Python encodes host names with is imported first: importing it then would need a descriptor.
NO_DESCRIPTORS = r"""
import ctypes, encodings.idna, json, os, resource, socket, sys
class addrinfo(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_int), ("family", ctypes.c_int), ("socktype", ctypes.c_int),
                ("protocol", ctypes.c_int), ("addrlen", ctypes.c_uint), ("addr", ctypes.c_void_p),
                ("canonname", ctypes.c_char_p), ("next", ctypes.c_void_p)]
libc = ctypes.CDLL(None, use_errno=True)
hints, res = addrinfo(socktype=socket.SOCK_STREAM), ctypes.c_void_p()
resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
held = []
while True:
    try:
        held.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        break
ctypes.set_errno(0)
code = libc.getaddrinfo(sys.argv[1].encode(), b"80", ctypes.byref(hints), ctypes.byref(res))
errno = ctypes.get_errno()
try:
    socket.getaddrinfo(sys.argv[1], 80, 0, socket.SOCK_STREAM)
    printed = ""
except OSError as e:
    printed = f"{type(e).__name__}: {e}"
print(json.dumps({"code": code, "errno": errno, "printed": printed}))
"""


def _setup(lab, resolv_conf: str = RESOLV_CONF) -> None:
    try:
        private_resolver(resolv_conf)
    except ResolverUnavailable as e:
        raise Skip(f"no private resolver configuration here: {e}") from None
    lab.note("/etc/resolv.conf, /etc/nsswitch.conf (hosts: files dns) and /etc/hosts are this "
             "scenario's own: " + " / ".join(resolv_conf.strip().splitlines()))


def lookup(lab, *calls: tuple) -> list[dict]:
    """getaddrinfo(host, port, family, type, 0, flags) for each call, in one fresh process;
    each call and what it returned is a step of the trace."""
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-I", "-c", LOOKUPS, json.dumps(calls)], capture_output=True,
                          text=True, timeout=CHILD_S, check=False)
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if len(results) != len(calls):
        lab.fail(f"the lookup process printed {len(results)} results for {len(calls)} calls "
                 f"({(done.stderr.strip().splitlines() or ['no error'])[-1]})")
    for (host, port, family, type_, flags), r in zip(calls, results):
        args = ", ".join([repr(host), repr(port)] + [f"{k}={v}" for k, v in
                         (("family", family), ("type", type_), ("flags", hex(flags))) if v])
        shown = "0" if r["code"] == 0 else f"{r['code']} {_name(r['code'])}: {r['message']}"
        lab.record({"actor": "resolver", "call": f"getaddrinfo({args})", "result": shown})
    lab.note(f"{len(calls)} lookup(s) took {time.monotonic() - began:.2f} s with the process start")
    return results


def _name(code: int) -> str:
    return next((n for n in dir(socket) if n.startswith("EAI_") and getattr(socket, n) == code), "?")


def expect_code(lab, result: dict, name: str, message: str) -> None:
    code = getattr(socket, name)
    lab.expect(result["code"] == code and result["message"] == message,
               f"getaddrinfo returns {name} ({code}, {message!r}); got {result['code']} {result['message']!r}")


def answered(lab, host: str, how: str) -> tuple[dict, list[tuple[str, str]]]:
    """One lookup of `host` with the responder answering it `how`: (result, questions asked)."""
    _setup(lab)
    with Responder({host: how}) as dns:
        (r,) = lookup(lab, (host, 80, 0, socket.SOCK_STREAM, 0))
        return r, list(dns.asked)


@scenario(
    claim="A name the server answers with NXDOMAIN makes glibc's getaddrinfo() return EAI_NONAME "
          "(-2, 'Name or service not known') after one A and one AAAA query; Python prints "
          "socket.gaierror: [Errno -2] Name or service not known.",
    proves=["resolver:EAI_NONAME"], timeout=10.0)
def resolver_nxdomain_is_eai_noname(lab):
    r, asked = answered(lab, "db.nxdomain.test", "NXDOMAIN")
    expect_code(lab, r, "EAI_NONAME", "Name or service not known")
    lab.expect(r["printed"] == "socket.gaierror: [Errno -2] Name or service not known",
               f"Python prints {r['printed']!r}")
    expected = [("db.nxdomain.test", "A"), ("db.nxdomain.test", "AAAA")]
    lab.expect(sorted(set(asked)) == expected, f"the responder was asked {expected} (asked: {asked})")


@scenario(
    claim="A server that answers SERVFAIL, or REFUSED, makes glibc's getaddrinfo() return EAI_AGAIN "
          "(-3, 'Temporary failure in name resolution'), not EAI_FAIL; a FORMERR answer ends as "
          "EAI_NONAME.",
    proves=["resolver:EAI_AGAIN", "resolver:EAI_FAIL"], timeout=10.0)
def resolver_servfail_is_eai_again(lab):
    _setup(lab)
    script = {"db.servfail.test": "SERVFAIL", "db.refused.test": "REFUSED", "db.formerr.test": "FORMERR"}
    with Responder(script):
        servfail, refused, formerr = lookup(lab, *[(name, 80, 0, socket.SOCK_STREAM, 0) for name in script])
    expect_code(lab, servfail, "EAI_AGAIN", "Temporary failure in name resolution")
    expect_code(lab, refused, "EAI_AGAIN", "Temporary failure in name resolution")
    expect_code(lab, formerr, "EAI_NONAME", "Name or service not known")


@scenario(
    claim="A server that never answers makes glibc's getaddrinfo() return EAI_AGAIN once the "
          "resolver's timeout has passed (options timeout:1 attempts:1: after at least one second).",
    proves=["resolver:EAI_AGAIN"], timeout=10.0)
def resolver_silence_is_eai_again_after_timeout(lab):
    r, asked = answered(lab, "db.silent.test", "SILENT")
    expect_code(lab, r, "EAI_AGAIN", "Temporary failure in name resolution")
    # a lower bound only: the resolver may not give up before its timeout, but may take longer
    lab.expect(r["seconds"] >= TIMEOUT_S * 0.95,
               f"the lookup waited out the {TIMEOUT_S:.0f} s timeout (took {r['seconds']} s)")
    lab.expect(bool(asked), f"the queries reached the silent server ({len(asked)} asked)")


@scenario(
    claim="A name the server knows but has no address for (NOERROR with no answer records: NODATA) "
          "makes glibc's getaddrinfo() return EAI_NODATA (-5, 'No address associated with hostname'), "
          "not EAI_NONAME; so does an IPv6-only name asked for with AF_INET.",
    proves=["resolver:EAI_NODATA"], timeout=10.0)
def resolver_nodata_answer_is_eai_nodata(lab):
    _setup(lab)
    v6 = {28: socket.inet_pton(socket.AF_INET6, "2001:db8::1")}
    with Responder({"db.nodata.test": "ADDRESS", "v6only.test": "ADDRESS"}, {"v6only.test": v6}):
        nodata, v4, any_family = lookup(lab, ("db.nodata.test", 80, 0, socket.SOCK_STREAM, 0),
                                        ("v6only.test", 80, socket.AF_INET, socket.SOCK_STREAM, 0),
                                        ("v6only.test", 80, 0, socket.SOCK_STREAM, 0))
    expect_code(lab, nodata, "EAI_NODATA", "No address associated with hostname")
    expect_code(lab, v4, "EAI_NODATA", "No address associated with hostname")
    lab.expect(any_family["code"] == 0, "the same name asked for with AF_UNSPEC resolves (to its AAAA)")


@scenario(
    claim="With AI_ADDRCONFIG and no IPv6 address but ::1, glibc asks only for the A record: a name that "
          "has only an AAAA record fails with EAI_NODATA, while the same call without the flag asks for "
          "both and gets the IPv6 address.",
    proves=["resolver:EAI_NODATA"], timeout=10.0)
def resolver_addrconfig_skips_aaaa_without_ipv6(lab):
    # lo's address becomes 10.1.1.1 (SIOCSIFADDR replaces 127.0.0.1): an IPv4 address that is not
    # loopback, which AI_ADDRCONFIG counts; the namespace's only IPv6 address stays ::1, which it
    # does not. The name server listens there.
    add_ipv4("lo", "10.1.1.1", "255.255.255.0")
    lab.note("lo: 10.1.1.1/24 and ::1, no other interface")
    _setup(lab, "nameserver 10.1.1.1\noptions timeout:1 attempts:1\n")
    v6 = {28: socket.inet_pton(socket.AF_INET6, "2001:db8::1")}
    with Responder({"v6only.test": "ADDRESS"}, {"v6only.test": v6}, bind="10.1.1.1") as dns:
        (flagged,) = lookup(lab, ("v6only.test", 80, 0, socket.SOCK_STREAM, socket.AI_ADDRCONFIG))
        flagged_asked = list(dns.asked)
        (plain,) = lookup(lab, ("v6only.test", 80, 0, socket.SOCK_STREAM, 0))
        plain_asked = dns.asked[len(flagged_asked):]
    expect_code(lab, flagged, "EAI_NODATA", "No address associated with hostname")
    lab.expect(sorted(set(flagged_asked)) == [("v6only.test", "A")],
               f"with AI_ADDRCONFIG only the A record is asked for ({flagged_asked})")
    lab.expect(plain["code"] == 0 and ("v6only.test", "AAAA") in plain_asked,
               f"without it the AAAA record is asked for and answers ({plain_asked})")


@scenario(
    claim="With no file descriptor left (RLIMIT_NOFILE reached), glibc's getaddrinfo() cannot open "
          "/etc/hosts or a socket to the name server and returns EAI_NONAME (-2), not EAI_SYSTEM, for a "
          "name the server would answer, with errno left at EMFILE; Python prints "
          "socket.gaierror: [Errno -2] Name or service not known.",
    proves=["resolver:EAI_NONAME", "resolver:EAI_SYSTEM"], timeout=10.0)
def resolver_no_descriptor_left_is_eai_noname(lab):
    _setup(lab)
    with Responder({"db.test": "ADDRESS"}, {"db.test": {1: bytes([192, 0, 2, 1])}}):
        done = subprocess.run([sys.executable, "-I", "-c", NO_DESCRIPTORS, "db.test"], capture_output=True,
                              text=True, timeout=CHILD_S, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        lab.fail(f"the lookup process printed nothing ({(done.stderr.strip().splitlines() or ['?'])[-1]})")
    r = json.loads(lines[-1])
    lab.record({"actor": "resolver", "call": "getaddrinfo('db.test', '80') with every descriptor in use",
                "result": f"{r['code']} {_name(r['code'])}, errno {r['errno']}"})
    lab.expect(r["code"] == socket.EAI_NONAME and r["errno"] == 24,
               f"getaddrinfo returns EAI_NONAME with errno EMFILE (got {r['code']}, errno {r['errno']})")
    lab.expect(r["printed"] == "gaierror: [Errno -2] Name or service not known", f"Python raises {r['printed']!r}")


@scenario(
    claim="With ndots:5 and three search domains (as Kubernetes writes them), a name with fewer than "
          "five dots is tried with every search domain before itself: a missing name costs four "
          "NXDOMAIN answers per address family before EAI_NONAME; with a trailing dot only the name "
          "itself is asked.",
    proves=["resolver:EAI_NONAME"], timeout=10.0)
def resolver_ndots_search_list_multiplies_queries(lab):
    search = ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local")
    _setup(lab, f"nameserver 127.0.0.1\nsearch {' '.join(search)}\noptions ndots:5 timeout:1 attempts:1\n")
    with Responder({}) as dns:
        relative, absolute = lookup(lab, ("api.example.test", 443, 0, socket.SOCK_STREAM, 0),
                                    ("api.example.test.", 443, 0, socket.SOCK_STREAM, 0))
        asked = list(dns.asked)
    expect_code(lab, relative, "EAI_NONAME", "Name or service not known")
    expect_code(lab, absolute, "EAI_NONAME", "Name or service not known")
    names = [f"api.example.test.{d}" for d in search] + ["api.example.test"]
    expected = [(n, t) for n in names for t in ("A", "AAAA")] + [("api.example.test", "A"),
                                                                  ("api.example.test", "AAAA")]
    lab.expect(sorted(asked) == sorted(expected),
               f"{len(expected)} queries: every search domain, the name, then the name alone for the "
               f"trailing dot (asked {len(asked)}: {asked})")
    lab.expect([n for n, _ in asked[:2]] == [names[0]] * 2,
               f"the first search domain is tried first ({asked[:2]})")


@scenario(
    claim="getaddrinfo() rejects bad arguments without asking any server: an unknown service name "
          "gives EAI_SERVICE (-8), an unknown socket type EAI_SOCKTYPE (-7), an unknown family "
          "EAI_FAMILY (-6), unknown flags EAI_BADFLAGS (-1), an IPv6 literal asked for as AF_INET "
          "EAI_ADDRFAMILY (-9), and a name with AI_NUMERICHOST EAI_NONAME (-2).",
    proves=["resolver:EAI_SERVICE", "resolver:EAI_SOCKTYPE", "resolver:EAI_FAMILY", "resolver:EAI_BADFLAGS",
            "resolver:EAI_ADDRFAMILY", "resolver:EAI_NONAME"], timeout=10.0)
def resolver_argument_errors(lab):
    _setup(lab)
    with Responder({}) as dns:
        results = lookup(lab, ("localhost", "nosuchservice", 0, socket.SOCK_STREAM, 0),
                         ("localhost", 80, 0, 99, 0),
                         ("localhost", 80, 99, 0, 0),
                         ("localhost", 80, 0, 0, 0x7FFFFFFF),
                         ("::1", 80, socket.AF_INET, 0, socket.AI_NUMERICHOST),
                         ("db.example.test", 80, 0, 0, socket.AI_NUMERICHOST))
        asked = list(dns.asked)
    expected = [("EAI_SERVICE", "Servname not supported for ai_socktype"),
                ("EAI_SOCKTYPE", "ai_socktype not supported"), ("EAI_FAMILY", "ai_family not supported"),
                ("EAI_BADFLAGS", "Bad value for ai_flags"),
                ("EAI_ADDRFAMILY", "Address family for hostname not supported"),
                ("EAI_NONAME", "Name or service not known")]
    for r, (name, message) in zip(results, expected):
        expect_code(lab, r, name, message)
    lab.expect(asked == [], f"no query reached the name server ({asked})")


@check(kind="resolver", claim="Each getaddrinfo code's number and message are the running glibc's (netdb.h and "
             "gai_strerror()), and its numbers on musl, Windows and libuv are those of their headers.")
def resolver_numbers_match_libc_and_headers(lab, db: str) -> list[dict]:
    gai_strerror = ctypes.CDLL(None).gai_strerror
    gai_strerror.restype = ctypes.c_char_p
    tables = {"glibc": sources.eai_codes(sources.GLIBC_NETDB), "musl": sources.eai_codes(sources.MUSL_NETDB),
              "windows": {k: v[1] for k, v in sources.windows_eai().items()},
              "libuv": sources.libuv_eai()}
    names = {k: v[0] for k, v in sources.windows_eai().items()}
    out = []
    for e in _entries(db, "resolver"):
        name = e["name"]
        expected = {"number": e["number"], "message": e["message"]}
        observed = {"message": gai_strerror(e["number"]).decode()}
        unchecked = []
        for platform, table in tables.items():
            key = "number" if platform == "glibc" else f"numbers.{platform}"
            if not table:
                unchecked.append(key)
                continue
            expected[key] = e["number"] if platform == "glibc" else e["numbers"].get(platform)
            observed[key] = table.get(name)
        if names:
            expected["windows_name"], observed["windows_name"] = e["windows_name"], names.get(name)
        out.append(_verdict(e["id"], expected, observed, unchecked))
    return out
