"""The resolver kind: getaddrinfo's EAI codes found by name, number on each platform and message,
their facts held to the headers and C libraries on this machine, and explain reading the lines
programs print for them."""

from __future__ import annotations

import ctypes
import json
import shutil
import struct
import subprocess

import pytest

from tcpkb import sources
from tcpkb.kinds import KINDS
from tcpkb.query.explain import explain
from tcpkb.verify import dns

from .conftest import KB

RESOLVER = KINDS["resolver"]


def notes() -> dict[str, dict]:
    import yaml

    out = {}
    for path in sorted((KB / "resolver").glob("*.md")):
        meta = yaml.safe_load(path.read_text().split("---\n")[1])
        out[meta["name"]] = meta
    return out


def platform_numbers(meta: dict) -> dict[str, int]:
    return {"glibc": meta["number"], **{p["platform"]: p["number"] for p in meta.get("platforms") or []}}


# --- lookups -----------------------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    (["EAI_NONAME"], "resolver:EAI_NONAME"),
    (["eai_again"], "resolver:EAI_AGAIN"),
    (["NODATA"], "resolver:EAI_NODATA"),
    (["ENOTFOUND"], "resolver:EAI_NONAME"),           # Node.js's code
    (["WSAHOST_NOT_FOUND"], "resolver:EAI_NONAME"),    # the Windows Sockets name
    (["-2"], "resolver:EAI_NONAME"),                   # glibc's number, as Python prints it
    (["-105"], "resolver:EAI_IDN_ENCODE"),
    (["-3008"], "resolver:EAI_NONAME"),                # libuv's, read by its size
    (["11002"], "resolver:EAI_AGAIN"),                 # Windows', read by its size
    (["8"], "resolver:EAI_NONAME"),                    # positive: macOS's
    (["8", "--os", "windows"], "resolver:EAI_MEMORY"),  # WSA_NOT_ENOUGH_MEMORY is 8
    (["7", "--os", "darwin"], "resolver:EAI_NODATA"),
    (["-5", "--os", "musl"], "resolver:EAI_NODATA"),
    (["Name does not resolve"], "resolver:EAI_NONAME"),              # musl's message
    (["temporary failure in name resolution"], "resolver:EAI_AGAIN"),  # glibc's, any case
    (["nodename nor servname provided, or not known"], "resolver:EAI_NONAME"),  # macOS's
])
def test_a_code_is_found_by_name_number_and_message(cli, args, expected):
    r = cli("resolver", *args, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["id"] == expected


def test_a_number_on_several_platforms_names_the_others(cli):
    answer = json.loads(cli("resolver", "8", "--json").stdout)
    assert answer["id"] == "resolver:EAI_NONAME"
    assert any("macOS" in n for n in answer["query_notes"])
    assert {"id": "resolver:EAI_MEMORY", "name": "EAI_MEMORY", "platforms": ["windows"]} in answer["also"]


def test_the_answer_carries_numbers_messages_sources_and_printed_forms(cli):
    answer = json.loads(cli("resolver", "EAI_NONAME", "--json").stdout)
    assert answer["numbers"] == {"glibc": -2, "musl": -2, "darwin": 8, "freebsd": 8, "windows": 11001,
                                 "libuv": -3008}
    assert answer["messages"]["musl"] == "Name does not resolve"
    assert answer["windows_name"] == "WSAHOST_NOT_FOUND" and answer["gnu"] is False
    assert all(answer["sources"][p] for p in answer["numbers"])
    assert any(f["by"] == "Node.js" and "ENOTFOUND" in f["text"] for f in answer["printed"])
    assert json.loads(cli("resolver", "EAI_NODATA", "--json").stdout)["gnu"] is True


@pytest.mark.parametrize("args, code", [
    (["EAI_NONAMEX"], 1),                 # no such code: the closest go to stderr
    (["-99"], 1),                         # no code has that number on glibc
    (["3", "--os", "plan9"], 2),          # not a platform
    (["EAI_NONAME", "--os", "darwin"], 2),  # --os reads a number, not a name
    ([""], 2),
])
def test_misses_and_bad_queries_exit_1_or_2_with_one_line(cli, args, code):
    r = cli("resolver", *args)
    assert r.exit_code == code
    assert "Traceback" not in r.output


def test_a_miss_suggests_the_closest(cli):
    r = cli("resolver", "EAI_NONAMEX", "--json")
    assert "resolver:EAI_NONAME" in json.loads(r.stdout)["suggestions"]


# --- the facts, against this machine ---------------------------------------------------

def test_every_code_glibc_defines_has_a_note():
    glibc = sources.eai_codes(sources.GLIBC_NETDB)
    if not glibc:
        pytest.skip("no glibc netdb.h: apt-get install libc6-dev")
    assert set(glibc) == set(notes())


@pytest.mark.parametrize("platform, table, package", [
    ("glibc", lambda: sources.eai_codes(sources.GLIBC_NETDB), "libc6-dev"),
    ("musl", lambda: sources.eai_codes(sources.MUSL_NETDB), "musl-dev"),
    ("windows", lambda: {k: v[1] for k, v in sources.windows_eai().items()}, "mingw-w64-common"),
    ("libuv", lambda: {k: v for k, v in sources.libuv_eai().items()}, "libuv1-dev"),
])
def test_numbers_are_those_of_the_headers_here(platform, table, package):
    defined = table()
    if not defined:
        pytest.skip(f"no {platform} header: apt-get install {package} (see .ci/run)")
    for name, meta in notes().items():
        assert platform_numbers(meta).get(platform) == defined.get(name), (name, platform)


def test_windows_names_are_those_of_ws2tcpip():
    names = {k: v[0] for k, v in sources.windows_eai().items()}
    if not names:
        pytest.skip("no MinGW-w64 ws2tcpip.h: apt-get install mingw-w64-common (see .ci/run)")
    assert {n: m.get("windows_name") for n, m in notes().items() if m.get("windows_name")} == names


def test_glibc_messages_are_gai_strerror_here():
    gai_strerror = ctypes.CDLL(None).gai_strerror
    gai_strerror.restype = ctypes.c_char_p
    for name, meta in notes().items():
        assert gai_strerror(meta["number"]).decode() == meta["message"], name


def test_musl_messages_are_its_gai_strerror(tmp_path):
    if shutil.which("musl-gcc") is None:
        pytest.skip("no musl-gcc: apt-get install musl-tools (see .ci/run)")
    program = tmp_path / "gai.c"
    program.write_text('#include <stdio.h>\n#include <netdb.h>\n#include <stdlib.h>\n'
                       'int main(int c, char **v) { for (int i = 1; i < c; i++) '
                       'printf("%s\\n", gai_strerror(atoi(v[i]))); return 0; }\n')
    subprocess.run(["musl-gcc", "-static", "-o", str(tmp_path / "gai"), str(program)], check=True, timeout=120)
    rows = [(n, p) for n, m in notes().items() for p in m.get("platforms") or [] if p["platform"] == "musl"]
    out = subprocess.run([str(tmp_path / "gai")] + [str(p["number"]) for _, p in rows], capture_output=True,
                         text=True, timeout=30, check=True).stdout.splitlines()
    assert [p["message"] for _, p in rows] == out


def test_gnu_extensions_are_the_ones_glibc_hides_without_gnu_source():
    text = sources.GLIBC_NETDB.read_text() if sources.GLIBC_NETDB.exists() else ""
    if "__USE_GNU" not in text:
        pytest.skip("no glibc netdb.h: apt-get install libc6-dev")
    gnu_block = text[text.index("# ifdef __USE_GNU\n#  define EAI_NODATA"):]
    gnu_block = gnu_block[:gnu_block.index("# endif")]
    hidden = {n for n in notes() if f"define {n}" in gnu_block}
    assert hidden == {n for n, m in notes().items() if m.get("gnu")}


# --- lint ------------------------------------------------------------------------------

def test_lint_names_wrong_signs_and_unknown_platforms():
    meta = {"number": 2, "platforms": [{"platform": "darwin", "number": -8, "source": "x"},
                                       {"platform": "plan9", "number": 1, "source": "x"},
                                       {"platform": "windows", "number": "11001", "source": "x"}]}
    assert [code for _, code, _ in RESOLVER.lint(meta)] == ["KB018", "KB018", "KB006", "KB006"]


# --- explain -----------------------------------------------------------------------------

LINES = [  # real formats: generated here by scripts/resolver_forms.py, or as the notes cite them
    ("socket.gaierror: [Errno -2] Name or service not known", "resolver:EAI_NONAME"),
    ("socket.gaierror: [Errno -3] Temporary failure in name resolution", "resolver:EAI_AGAIN"),
    ("OSError: [Errno -5] No address associated with hostname", "resolver:EAI_NODATA"),
    ("requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.internal', port=443): Max retries "
     "exceeded with url: /v1 (Caused by NameResolutionError(\"<urllib3.connection.HTTPSConnection object at "
     "0x7f2b>: Failed to resolve 'api.internal' ([Errno -3] Temporary failure in name resolution)\"))",
     "resolver:EAI_AGAIN"),
    ("Error: getaddrinfo ENOTFOUND registry.internal.example", "resolver:EAI_NONAME"),
    ("Error: getaddrinfo EAI_AGAIN registry.npmjs.org", "resolver:EAI_AGAIN"),
    ("Error: getaddrinfo ENOTFOUND mail.example.org\n    at GetAddrInfoReqWrap.onlookup [as oncomplete] "
     "(node:dns:107:26) {\n  errno: -3007,\n  code: 'ENOTFOUND',\n  syscall: 'getaddrinfo'\n}", "resolver:EAI_NODATA"),
    ("Get \"https://auth.svc:8443/token\": dial tcp: lookup auth.svc on 10.96.0.10:53: no such host",
     "resolver:EAI_NONAME"),
    ("dial tcp: lookup redis.cache.svc.cluster.local on 10.96.0.10:53: server misbehaving", "resolver:EAI_AGAIN"),
    ("dial tcp: lookup api.stripe.com on 10.96.0.10:53: read udp 10.244.2.7:51234->10.96.0.10:53: i/o timeout",
     "resolver:EAI_AGAIN"),
    ('Exception in thread "main" java.net.UnknownHostException: kafka-1.kafka-headless: Name or service not known',
     "resolver:EAI_NONAME"),
    ("curl: (6) Could not resolve host: artifacts.corp.example", "resolver:EAI_NONAME"),
    ("socket.gaierror: [Errno 8] nodename nor servname provided, or not known", "resolver:EAI_NONAME"),
    ("urllib3.exceptions.NewConnectionError: Failed to establish a new connection: [Errno 11001] getaddrinfo "
     "failed", "resolver:EAI_NONAME"),
    ("System.Net.Sockets.SocketException (11001): No such host is known.", "resolver:EAI_NONAME"),
    ("Der Name oder der Dienst ist nicht bekannt", "resolver:EAI_NONAME"),  # glibc's de translation
    ("ssh: Could not resolve hostname gitlab.internal: Temporary failure in name resolution", "resolver:EAI_AGAIN"),
]


@pytest.mark.parametrize("text, expected", LINES)
def test_explain_names_the_code_first(lexicon, text, expected):
    matches = explain(lexicon, text)
    assert matches and matches[0]["id"] == expected, [(m["id"], m["score"]) for m in matches]
    assert all(e["span"][1] > e["span"][0] for e in matches[0]["evidence"])


def test_a_negative_python_errno_is_not_read_as_errno(lexicon):
    """[Errno -2] is getaddrinfo's EAI_NONAME on glibc, not -ENOENT."""
    ids = [m["id"] for m in explain(lexicon, "socket.gaierror: [Errno -2] Name or service not known")]
    assert "errno:ENOENT" not in ids


def test_printed_forms_match_with_another_host(lexicon):
    """The host a printed form names is left out of what explain matches."""
    matches = explain(lexicon, "Error: getaddrinfo ENOTFOUND some.other.host")
    assert matches[0]["id"] == "resolver:EAI_NONAME" and matches[0]["score"] >= 0.9


# --- the DNS responder the scenarios use --------------------------------------------------

def query(name: str, qtype: int = 1) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", qtype, 1)


@pytest.mark.parametrize("how, rcode, answers", [("NXDOMAIN", 3, 0), ("SERVFAIL", 2, 0), ("REFUSED", 5, 0),
                                                 ("ADDRESS", 0, 1)])
def test_the_responder_answers_as_scripted(how, rcode, answers):
    reply = dns.answer(query("db.test"), how, {1: bytes([192, 0, 2, 1])})
    ident, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    assert (ident, flags & 0x8000, flags & 0xF, qd, an) == (0x1234, 0x8000, rcode, 1, answers)
    assert dns.parse_question(reply)[2:4] == ("db.test", 1)


def test_the_responder_answers_nodata_and_silence():
    _, flags, _, an = struct.unpack("!HHHH", dns.answer(query("db.test", 28), "ADDRESS", {1: b"\0" * 4})[:8])
    assert (flags & 0xF, an) == (0, 0)  # NOERROR, no record of the type asked: NODATA
    assert dns.answer(query("db.test"), "SILENT", {}) is None
    with pytest.raises(ValueError):
        dns.parse_question(b"\0" * 8)
