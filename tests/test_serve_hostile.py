"""A real `tcpkb serve` under the project's hostile corpus (tests/fixtures/hostile_requests.txt):
every payload in every slot (path, each query parameter, headers), traversal and odd targets,
every method, oversized requests. No answer is a 5xx, no payload comes back as markup, and
the server neither dies nor prints a traceback."""

from __future__ import annotations

import re
import socket
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote_from_bytes, urlsplit

import pytest

from tests.conftest import FIXTURES

ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|\\)")
MARKUP = set(b"<>\"'")


def unescape(line: str) -> bytes:
    """A corpus line as bytes: \\xHH is that byte, \\uHHHH that character in UTF-8, \\\\ one \\."""
    def one(m: re.Match) -> bytes:
        code = m.group(1)
        if code == b"\\":
            return b"\\"
        if code[:1] == b"x":
            return bytes([int(code[1:], 16)])
        return chr(int(code[1:], 16)).encode()
    return ESCAPE.sub(one, line.encode())


def corpus() -> dict[str, list[bytes]]:
    sections: dict[str, list[bytes]] = {}
    current = None
    for line in (FIXTURES / "hostile_requests.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("# ") or line == "#":
            continue
        if re.fullmatch(r"\[\w+\]", line):
            current = sections.setdefault(line[1:-1], [])
        else:
            current.append(unescape(line))
    return sections


def requests() -> list[tuple[bytes, bytes, list[bytes], bytes]]:
    """(method, target, extra header lines, payload) for every payload in every slot."""
    c = corpus()
    out = []
    for p in c["payload"]:
        encoded = quote_from_bytes(p, safe="").encode()
        for template in c["path"]:
            out.append((b"GET", template.replace(b"{p}", encoded), [], p))
            if not set(p) & set(b"\r\n \x00#?") and p.isascii():  # raw, where a request line can
                out.append((b"GET", template.replace(b"{p}", p), [], p))
        for template in c["param"]:
            out.append((b"GET", template.replace(b"{p}", encoded), [], p))
        for header in c["header"]:
            if not set(p) & set(b"\r\n\x00"):
                out.append((b"GET", b"/errno/104", [header.replace(b"{p}", p)], p))
    out += [(b"GET", t, [], b"") for t in c["target"]]
    for method in c["method"]:
        for target in c["target"][:3] + [b"/errno/104", b"/tcpkb/entries", b"/search?q=reset"]:
            out.append((method, target, [], b""))
    out += [(b"GET", b"/search?q=" + b"a" * 100_000, [], b""),  # oversized: line, params, header
            (b"GET", b"/search?" + b"&".join(b"q%d=x" % i for i in range(5000)), [], b""),
            (b"GET", b"/errno/104", [b"X-Big: " + b"h" * 60_000], b""),
            (b"GET", b"/errno/104", [b"X-H%d: v" % i for i in range(500)], b"")]
    return out


def send(base: str, index: int, method: bytes, target: bytes, headers: list[bytes]):
    """One request on its own connection from 127.0.0.N (the server's error budget is per
    address; this test is about the answers, not the budget): (status, headers, body)."""
    host, port = urlsplit(base).hostname, urlsplit(base).port
    raw = b"%s %s HTTP/1.1\r\nHost: %s:%d\r\n%sConnection: close\r\n\r\n" % (
        method, target, host.encode(), port, b"".join(h + b"\r\n" for h in headers))
    with socket.create_connection((host, port), timeout=30,
                                  source_address=(f"127.0.0.{2 + index % 200}", 0)) as s:
        s.sendall(raw)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1]) if len(lines[0].split()) > 1 else 0
    return status, {k.strip().lower(): v.strip() for k, _, v in (x.partition(b":") for x in lines[1:])}, body


@pytest.fixture(scope="module")
def answers(served_log):
    base, _ = served_log
    todo = requests()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda a: send(base, a[0], *a[1][:3]), enumerate(todo)))
    return list(zip(todo, results))


def test_the_corpus_is_a_few_hundred_requests_in_every_slot():
    todo = requests()
    assert len(todo) >= 300
    methods = {m for m, *_ in todo}
    assert {b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"TRACE", b"PATCH", b"BREW"} <= methods
    assert any(h for _, _, h, _ in todo) and any(b"%00" in t for _, t, _, _ in todo)


def test_no_hostile_request_gets_a_5xx(answers):
    failures = [(m, t[:120], s) for (m, t, _, _), (s, _, _) in answers if s >= 500 or s == 0]
    assert not failures, failures[:20]
    assert {s for _, (s, _, _) in answers} & {400, 404, 405}


def test_no_payload_comes_back_as_markup(answers):
    leaks = []
    for (method, target, _, payload), (status, headers, body) in answers:
        text = payload.decode("utf-8", "replace")
        if len(payload) < 6 or not set(payload) & MARKUP:
            continue
        if headers.get(b"content-type", b"").startswith(b"text/html") and text.encode() in body:
            leaks.append((target[:100], status))
    assert not leaks, leaks[:20]


def test_methods_other_than_get_and_head_are_refused(answers):
    for (method, target, _, _), (status, headers, _) in answers:
        if method.upper() not in (b"GET", b"HEAD") and status not in (400,):
            assert status == 405 and headers.get(b"allow") == b"GET, HEAD", (method, target, status)


def test_the_server_stays_up_and_quiet(answers, served_log):
    base, log = served_log
    status, _, body = send(base, 0, b"GET", b"/errno/104", [])
    assert status == 200 and b"ECONNRESET" in body
    printed = log.read_text(errors="replace")
    assert "Traceback" not in printed and "\u256d" not in printed, printed[-2000:]  # rich's box
