"""The notes' facts against what this machine can say: glibc, Python, the headers, the kernel."""

from __future__ import annotations

import errno
import os
import platform
import signal
import socket
import struct

import pytest

from tcpkb import sources
from tcpkb.kinds.base import meta_abi_numbers as abi_numbers
from tcpkb.kinds.errno import platform_numbers as errno_numbers
from tcpkb.notes import load

from .conftest import KB

NOTES, _ = load(KB)
BY_KIND: dict[str, dict[str, dict]] = {}
for _n in NOTES:
    BY_KIND.setdefault(_n.kind, {})[_n.meta["name"]] = _n.meta
ERRNOS = BY_KIND.get("errno", {})
SIGNALS = BY_KIND.get("signal", {})
STATES = BY_KIND.get("state", {})
FLAGS = BY_KIND.get("flag", {})
SYSCTLS = BY_KIND.get("sysctl", {})
SOCKOPTS = BY_KIND.get("sockopt", {})
CALLS = BY_KIND.get("call", {})
# errno name -> the calls whose `errors` list it: the one source of that relation
CALLS_OF: dict[str, set[str]] = {}
for _name, _meta in CALLS.items():
    for _e in _meta.get("errors") or []:
        CALLS_OF.setdefault(_e["errno"], set()).add(_name)
USER_ERRNOS = {k: v for k, v in ERRNOS.items() if not v.get("internal")}
GLIBC = platform.libc_ver()[0] == "glibc"


def names_of(meta: dict) -> list[str]:
    return [meta["name"], *(meta.get("aliases") or [])]


def test_every_linux_errno_has_an_entry():
    header = sources.linux_errnos()
    assert header, "no /usr/include/asm-generic/errno.h (install linux-libc-dev)"
    known = {n: m for m in USER_ERRNOS.values() for n in names_of(m)}
    assert set(header) <= set(known), sorted(set(header) - set(known))
    for name, number in header.items():
        assert known[name]["number"] == number, name
    # 1..133 with the two holes the kernel leaves (41 and 58)
    assert {m["number"] for m in USER_ERRNOS.values()} == set(header.values())
    assert "EHWPOISON" in known and known["EHWPOISON"]["number"] == 133


def test_glibc_aliases_are_recorded():
    for alias, target in sources.glibc_errno_aliases().items():
        assert alias in ERRNOS[target].get("aliases", []), alias


def test_numbers_agree_with_python_errno():
    for name, meta in USER_ERRNOS.items():
        for n in names_of(meta):
            if hasattr(errno, n):
                assert getattr(errno, n) == meta["number"], n


@pytest.mark.skipif(not GLIBC, reason="messages are glibc's; this libc is not glibc")
def test_messages_are_glibc_strerror():
    for name, meta in ERRNOS.items():
        assert os.strerror(meta["number"]) == meta["message"], name


def need_headers(abi: str, header: str) -> None:
    if not (sources.CROSS_ROOTS[abi] / header).exists():
        pytest.skip(f"no {abi} headers: apt-get install linux-libc-dev-*-cross (see .ci/run)")


@pytest.mark.parametrize("abi", sorted(sources.CROSS_ROOTS))
def test_other_linux_abis(abi):
    need_headers(abi, "asm/errno.h")
    header = sources.linux_errnos(abi)
    for name, meta in USER_ERRNOS.items():
        assert errno_numbers(meta)[abi] == header.get(name), f"{name} on {abi}"
        for alias, per in (meta.get("alias_numbers") or {}).items():
            expected = header.get(alias)
            # an alias listed nowhere has the entry's own number on that ABI
            got = per.get(abi, errno_numbers(meta)[abi] if expected == header.get(name) else None)
            assert got == expected, f"{alias} on {abi}"


def test_windows_sockets_codes():
    wsa = sources.windows_wsa()
    if not wsa:
        pytest.skip("no MinGW-w64 winerror.h: apt-get install mingw-w64-common (see .ci/run)")
    for name, meta in USER_ERRNOS.items():
        expected = next((wsa["WSA" + n] for n in names_of(meta) if "WSA" + n in wsa), None)
        assert (meta.get("numbers") or {}).get("windows") == expected, name


def test_bsd_numbers_of_the_socket_codes():
    # No BSD headers on a Linux machine: these come from xnu's and FreeBSD's sys/errno.h.
    # Pin the ones people meet so a slip shows up.
    for name, number in {"ECONNRESET": 54, "EPIPE": 32, "EAGAIN": 35, "ETIMEDOUT": 60,
                         "ECONNREFUSED": 61, "EADDRINUSE": 48, "EINPROGRESS": 36}.items():
        assert ERRNOS[name]["numbers"]["darwin"] == number
        assert ERRNOS[name]["numbers"]["freebsd"] == number


def test_internal_codes():
    internal = {k: v for k, v in ERRNOS.items() if v.get("internal")}
    assert {"ERESTARTSYS", "ERESTARTNOINTR", "ERESTARTNOHAND", "ERESTART_RESTARTBLOCK"} <= set(internal)
    assert all(v["number"] >= 512 for v in internal.values())
    assert not any(v["number"] >= 512 for v in USER_ERRNOS.values())


NOT_FROM_A_TCP_CALL = {"ENETDOWN", "EPROTOTYPE", "EDESTADDRREQ", "ESHUTDOWN", "ENETRESET"}


def test_socket_errnos_are_full():
    required = """EPIPE ECONNRESET EAGAIN ECONNREFUSED ETIMEDOUT EADDRINUSE EADDRNOTAVAIL EINPROGRESS
    EALREADY EISCONN ENOTCONN ECONNABORTED ENETUNREACH EHOSTUNREACH ENETDOWN EHOSTDOWN EMFILE ENFILE
    ENOBUFS EMSGSIZE EINTR EBADF ENOTSOCK EINVAL EFAULT EACCES EPERM EOPNOTSUPP EPROTONOSUPPORT
    EAFNOSUPPORT EPROTOTYPE ENOPROTOOPT EDESTADDRREQ ESHUTDOWN ENETRESET ENOMEM""".split()
    for name in required:
        meta = ERRNOS[name]
        assert meta.get("socket") is True, name
        assert meta.get("seen_as"), name
        # these reach a program through other socket types or SO_ERROR; no call returns them on TCP
        assert bool(CALLS_OF.get(name)) != (name in NOT_FROM_A_TCP_CALL), name


def test_signals_match_python_and_glibc():
    for sig in signal.Signals:
        if sig.name in ("SIGRTMIN", "SIGRTMAX"):
            continue
        assert any(sig.name in names_of(m) and m["number"] == sig.value for m in SIGNALS.values()), sig.name
    for name, meta in SIGNALS.items():
        if name in ("SIGRTMIN", "SIGRTMAX"):
            assert meta["number"] == getattr(signal, name)
        else:
            assert meta["title"] == signal.strsignal(meta["number"]), name


def test_signals_match_signal_7():
    table = sources.signal_man_table()
    if not table:
        pytest.skip("no signal(7): apt-get install manpages")
    for name, meta in SIGNALS.items():
        if name in table:
            assert meta["action"] == table[name]["action"], name
            assert meta["standard"] == table[name]["standard"], name


@pytest.mark.parametrize("abi", sorted(sources.CROSS_ROOTS))
def test_signals_on_other_abis(abi):
    need_headers(abi, "asm/signal.h")
    header = sources.linux_signals(abi)
    for name, meta in SIGNALS.items():
        if name == "SIGRTMIN":
            continue  # the kernel's 32, which glibc moves to 34
        if name == "SIGRTMAX" and name not in header:
            continue  # alpha's and parisc's uapi headers leave _NSIG to the kernel proper
        assert abi_numbers(meta)[abi] == header.get(name), f"{name} on {abi}"


def test_states_match_the_kernel_headers():
    enum = sources.tcp_states()
    assert len(STATES) == 13
    for name, meta in STATES.items():
        assert meta["hex"] in (f"{meta['number']:02X}", None), name
        if name in enum:
            assert meta["number"] == enum[name], name
    assert sorted(m["number"] for m in STATES.values()) == list(range(1, 14))


def test_state_numbers_on_the_running_kernel():
    """tcpi_state, the first byte of TCP_INFO, for a listener and both ends of a connection."""
    def state_of(sock):
        return struct.unpack("B", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1))[0]

    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname(), timeout=5) as client:
            conn, _ = server.accept()
            with conn:
                assert state_of(server) == STATES["LISTEN"]["number"]
                assert state_of(client) == state_of(conn) == STATES["ESTABLISHED"]["number"]
                conn.shutdown(socket.SHUT_WR)
                client.recv(1)  # the FIN arrived: the client is now in CLOSE_WAIT
                assert state_of(client) == STATES["CLOSE_WAIT"]["number"]
    fresh = socket.socket()
    try:
        assert state_of(fresh) == STATES["CLOSE"]["number"]
    finally:
        fresh.close()


def test_transitions_cover_the_rfc_diagram():
    edges = {(name, t["to"]) for name, m in STATES.items() for t in m["transitions"] if t.get("rfc")}
    for edge in [("CLOSE", "LISTEN"), ("CLOSE", "SYN_SENT"), ("LISTEN", "SYN_RECV"),
                 ("LISTEN", "SYN_SENT"), ("SYN_SENT", "SYN_RECV"), ("SYN_SENT", "ESTABLISHED"),
                 ("SYN_RECV", "ESTABLISHED"), ("SYN_RECV", "FIN_WAIT1"),
                 ("ESTABLISHED", "FIN_WAIT1"), ("ESTABLISHED", "CLOSE_WAIT"),
                 ("FIN_WAIT1", "FIN_WAIT2"), ("FIN_WAIT1", "CLOSING"), ("FIN_WAIT2", "TIME_WAIT"),
                 ("CLOSING", "TIME_WAIT"), ("CLOSE_WAIT", "LAST_ACK"), ("LAST_ACK", "CLOSE"),
                 ("TIME_WAIT", "CLOSE")]:
        assert edge in edges, edge


def test_flags_match_the_uapi_header():
    bits = sources.tcp_flag_bits()
    assert set(FLAGS) == {"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "AE"}
    for name, meta in FLAGS.items():
        if name in bits:
            assert meta["bit"] == bits[name], name
    assert FLAGS["AE"]["bit"] == 0x100  # the bit after CWR, above the eight classic flags


def test_every_tcp_sysctl_on_this_kernel_has_an_entry():
    here = {f"net.ipv4.{f}" for f in os.listdir("/proc/sys/net/ipv4") if f.startswith("tcp_")}
    assert here <= set(SYSCTLS), sorted(here - set(SYSCTLS))
    present = {n for n, m in SYSCTLS.items() if not m.get("removed_in")}
    missing = [n for n in present if not os.path.exists("/proc/sys/" + n.replace(".", "/"))]
    assert missing == [], "notes for knobs this kernel lacks must say removed_in"


def test_the_traps_people_fall_into_are_stated_right():
    assert SYSCTLS["net.ipv4.tcp_fin_timeout"]["default"] == "60"
    assert SYSCTLS["net.ipv4.tcp_tw_reuse"]["default"] == "2"
    assert SYSCTLS["net.ipv4.tcp_tw_reuse"]["type"] == "mode"
    assert SYSCTLS["net.core.somaxconn"]["default"] == "4096"
    assert SYSCTLS["net.ipv4.tcp_tw_recycle"]["removed_in"] == "4.12"


def test_sockopt_numbers_match_the_headers():
    generic = sources.socket_options()
    assert generic, "no /usr/include/asm-generic/socket.h (install linux-libc-dev)"
    for name, meta in SOCKOPTS.items():
        assert generic.get(name, getattr(socket, name, None)) == meta["number"], name
        if meta["level"] != "SOL_SOCKET":
            continue
        for abi in sources.CROSS_ROOTS:
            table = sources.socket_options(abi) if sources.CROSS_ROOTS[abi].exists() else {}
            if name in table:
                assert abi_numbers(meta)[abi] == table[name], f"{name} on {abi}"
