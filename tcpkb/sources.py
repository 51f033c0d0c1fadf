"""Primary sources on this machine: kernel uapi headers, glibc, man pages.

Used by the content tests and by the maintainers' scripts that draft note
facts; never on the lookup path. Every function returns plain dicts so a
test can compare them with what the notes say.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

# Linux ABIs whose errno or signal numbers differ from the generic ones, and
# where Debian's linux-libc-dev-*-cross packages put their headers.
CROSS_ROOTS = {
    "alpha": Path("/usr/alpha-linux-gnu/include"),
    "mips": Path("/usr/mips-linux-gnu/include"),
    "sparc": Path("/usr/sparc64-linux-gnu/include"),
    "parisc": Path("/usr/hppa-linux-gnu/include"),
    "powerpc": Path("/usr/powerpc-linux-gnu/include"),
}
NATIVE_ROOT = Path("/usr/include")
MINGW_WINERROR = Path("/usr/share/mingw-w64/include/winerror.h")
SIGNAL_MAN = Path("/usr/share/man/man7/signal.7.gz")

_DEFINE = re.compile(r"^\s*#\s*define\s+(\w+)\s+(.+?)\s*$")
_UNDEF = re.compile(r"^\s*#\s*undef\s+(\w+)")
_INCLUDE = re.compile(r"^\s*#\s*include\s+<([^>]+)>")
_IFDEF = re.compile(r"^\s*#\s*(ifdef|ifndef)\s+(\w+)")
_IF = re.compile(r"^\s*#\s*if\b")
_ELSE = re.compile(r"^\s*#\s*(else|elif)\b")
_ENDIF = re.compile(r"^\s*#\s*endif\b")


def header_defines(root: Path, relpath: str, _seen: set | None = None,
                   _outer: dict[str, str] | None = None) -> dict[str, str]:
    """The raw `#define NAME value` pairs of a header and what it includes,
    in file order, honouring `#undef` (powerpc redefines EDEADLOCK that way)."""
    seen = _seen if _seen is not None else set()
    path = root / relpath
    if relpath in seen or not path.exists():
        return {}
    seen.add(relpath)
    out: dict[str, str] = dict(_outer or {})  # what the including header defined so far
    # Drop comments first: asm-generic/signal.h keeps "#define SIGLOST 29"
    # inside a comment, and that is not a definition.
    text = re.sub(r"/\*.*?\*/", " ", path.read_text(errors="replace"), flags=re.S)
    # Conditionals: `#ifdef`/`#ifndef NAME` are decided (powerpc's asm/socket.h defines SO_RCVLOWAT
    # before including the generic header, whose own value sits under `#ifndef SO_PASSCRED`);
    # any other `#if` cannot be evaluated here, so both of its branches count as taken.
    stack: list[list[bool]] = []  # [taken, decided] per open conditional
    for line in text.splitlines():
        if m := _IFDEF.match(line):
            stack.append([(m.group(2) in out) == (m.group(1) == "ifdef"), True])
        elif _IF.match(line):
            stack.append([True, False])
        elif _ELSE.match(line):
            if stack and stack[-1][1]:
                stack[-1][0] = not stack[-1][0]
        elif _ENDIF.match(line):
            if stack:
                stack.pop()
        elif not all(taken for taken, _ in stack):
            continue
        elif m := _INCLUDE.match(line):
            out.update(header_defines(root, m.group(1), seen, out))
        elif m := _UNDEF.match(line):
            out.pop(m.group(1), None)
        elif m := _DEFINE.match(line):
            out[m.group(1)] = m.group(2).strip()
    return out


def _resolve(defines: dict[str, str], prefix: str) -> dict[str, int]:
    """Evaluate NAME -> value chains (EWOULDBLOCK -> EAGAIN -> 11, WSABASEERR+54)."""

    def value(expr: str, depth: int = 0) -> int | None:
        expr = expr.strip().strip("()").strip()
        if depth > 10:
            return None
        if re.fullmatch(r"-?\d+", expr):
            return int(expr)
        if re.fullmatch(r"0x[0-9a-fA-F]+", expr):
            return int(expr, 16)
        if m := re.fullmatch(r"(\w+)\s*\+\s*(\d+)", expr):
            base = value(defines.get(m.group(1), ""), depth + 1)
            return None if base is None else base + int(m.group(2))
        if expr in defines:
            return value(defines[expr], depth + 1)
        return None

    out = {}
    for name, expr in defines.items():
        if name.startswith(prefix) and (v := value(expr)) is not None:
            out[name] = v
    return out


def linux_errnos(abi: str = "generic") -> dict[str, int]:
    """errno name -> number for a Linux ABI, from its asm/errno.h."""
    root = NATIVE_ROOT if abi == "generic" else CROSS_ROOTS[abi]
    if abi == "generic":
        defines = header_defines(root, "asm-generic/errno.h")
    else:
        defines = header_defines(root, "asm/errno.h")
    return {k: v for k, v in _resolve(defines, "E").items() if not k.startswith("E_")}


def glibc_errno_aliases() -> dict[str, str]:
    """Aliases glibc adds on top of the kernel's (ENOTSUP = EOPNOTSUPP)."""
    path = NATIVE_ROOT / "x86_64-linux-gnu/bits/errno.h"
    if not path.exists():
        return {}
    return {k: v for k, v in header_defines(NATIVE_ROOT, "x86_64-linux-gnu/bits/errno.h").items()
            if re.fullmatch(r"E[A-Z0-9]+", k) and re.fullmatch(r"E[A-Z0-9]+", v)}


def linux_signals(abi: str = "generic") -> dict[str, int]:
    """Signal name -> number for a Linux ABI, from its asm/signal.h."""
    root = NATIVE_ROOT if abi == "generic" else CROSS_ROOTS[abi]
    rel = "asm-generic/signal.h" if abi == "generic" else "asm/signal.h"
    defines = header_defines(root, rel)
    found = _resolve(defines, "SIG")
    return {k: v for k, v in found.items()
            if re.fullmatch(r"SIG[A-Z0-9]+", k) and k not in {"SIGSTKSZ", "SIG_BLOCK"}
            and 0 < v <= 128}


def windows_wsa() -> dict[str, int]:
    """WSAE* name -> number, from the MinGW-w64 copy of winerror.h."""
    if not MINGW_WINERROR.exists():
        return {}
    defines = header_defines(MINGW_WINERROR.parent, MINGW_WINERROR.name)
    return {k: v for k, v in _resolve(defines, "WSAE").items() if 10000 <= v < 11100}


def signal_man_table() -> dict[str, dict[str, str]]:
    """From signal(7): each signal's standard and default action."""
    if not SIGNAL_MAN.exists():
        return {}
    text = gzip.decompress(SIGNAL_MAN.read_bytes()).decode("utf-8", "replace")
    out: dict[str, dict[str, str]] = {}
    in_table = False
    for line in text.splitlines():
        if line.startswith("Signal\tStandard\tAction"):
            in_table = True
            continue
        if in_table and line.startswith(".TE"):
            break
        if in_table and line.startswith("SIG"):
            parts = line.split("\t")
            out[parts[0]] = {"standard": parts[1].replace("\\-", "-"),
                             "action": parts[2].replace("\\-", "-")}
    return out


def _enum_members(path: Path, prefix: str) -> dict[str, int]:
    """Members of C enums whose names start with `prefix`, counting implicit values."""
    if not path.exists():
        return {}
    text = re.sub(r"/\*.*?\*/", " ", path.read_text(errors="replace"), flags=re.S)
    out: dict[str, int] = {}
    for body in re.findall(r"enum\s*\w*\s*\{(.*?)\}", text, flags=re.S):
        value = -1
        for item in body.split(","):
            item = item.strip()
            if not (m := re.match(r"(\w+)\s*(?:=\s*(.+))?$", item, flags=re.S)):
                continue
            name, expr = m.group(1), m.group(2)
            if expr is not None:
                try:
                    value = int(expr.strip(), 0)
                except ValueError:
                    value = None  # an expression we do not evaluate
            elif value is not None:
                value += 1
            if name.startswith(prefix) and value is not None:
                out[name[len(prefix):]] = value
    return out


def tcp_states() -> dict[str, int]:
    """Kernel TCP state name -> number, from glibc's netinet/tcp.h and the uapi BPF_TCP_* mirror."""
    states = _enum_members(NATIVE_ROOT / "linux/bpf.h", "BPF_TCP_")
    states.pop("MAX_STATES", None)
    states.update(_enum_members(NATIVE_ROOT / "netinet/tcp.h", "TCP_"))
    return {k: v for k, v in states.items() if k.isupper()}


def tcp_flag_bits() -> dict[str, int]:
    """TCP flag name -> bit in the 12-bit flags field, from uapi linux/tcp.h's TCP_FLAG_*."""
    path = NATIVE_ROOT / "linux/tcp.h"
    if not path.exists():
        return {}
    found = re.findall(r"TCP_FLAG_(\w+)\s*=\s*__constant_cpu_to_be32\((0x[0-9a-fA-F]+)\)", path.read_text())
    # The constants mask the 32-bit word holding data offset, reserved bits and flags.
    return {name: int(value, 16) >> 16 for name, value in found if (int(value, 16) >> 16) <= 0x1FF}


def socket_options(abi: str = "generic") -> dict[str, int]:
    """SO_*, TCP_*, IP_*, IPV6_* option names and MSG_* flags -> value on a Linux ABI.

    Only the SOL_SOCKET options differ between ABIs (asm/socket.h); the rest
    come from the generic uapi headers and glibc's bits/socket.h.
    """
    root = NATIVE_ROOT if abi == "generic" else CROSS_ROOTS[abi]
    rel = "asm-generic/socket.h" if abi == "generic" else "asm/socket.h"
    defines = header_defines(root, rel)
    found = _resolve(defines, "SO_")
    # SO_RCVTIMEO is a sizeof() expression on 32-bit; 64-bit ABIs use the _OLD value.
    for name in ("SO_RCVTIMEO", "SO_SNDTIMEO"):
        if name not in found and f"{name}_OLD" in found:
            found[name] = found[f"{name}_OLD"]
    if abi != "generic":
        return found
    found.update(_resolve(header_defines(NATIVE_ROOT, "linux/tcp.h"), "TCP_"))
    found.update(_resolve(header_defines(NATIVE_ROOT, "linux/in.h"), "IP_"))
    found.update(_resolve(header_defines(NATIVE_ROOT, "linux/in6.h"), "IPV6_"))
    bits = NATIVE_ROOT / "x86_64-linux-gnu/bits/socket.h"
    if bits.exists():  # an enum whose members each carry a #define line: read `MSG_X = 0x40,`
        found.update({name: int(value, 0) for name, value in re.findall(
            r"^\s*(MSG_\w+)\s*=\s*(0x[0-9a-fA-F]+|\d+)\s*,", bits.read_text(), flags=re.M)})
    return found


def syscall_names() -> set[str]:
    """The kernel's system call names on x86-64 (`__NR_pselect6` -> pselect6), as strace prints them."""
    path = NATIVE_ROOT / "x86_64-linux-gnu/asm/unistd_64.h"
    if not path.exists():
        return set()
    return set(re.findall(r"#define __NR_(\w+)\s+\d+", path.read_text()))


# --- getaddrinfo's codes ---------------------------------------------------------------

GLIBC_NETDB = NATIVE_ROOT / "netdb.h"
MUSL_NETDB = Path("/usr/include/x86_64-linux-musl/netdb.h")
MINGW_INCLUDE = Path("/usr/share/mingw-w64/include")
LIBUV_ERRNO = NATIVE_ROOT / "uv/errno.h"
_EAI = re.compile(r"^\s*#\s*define\s+(EAI_\w+)\s+\(?\s*(-?\d+)\s*\)?", re.M)


def eai_codes(path: Path) -> dict[str, int]:
    """EAI_* -> number from a C library's netdb.h, the GNU extensions under `__USE_GNU` or
    `_GNU_SOURCE` included (a conditional only decides whether a program sees them)."""
    if not path.exists():
        return {}
    text = re.sub(r"/\*.*?\*/", " ", path.read_text(errors="replace"), flags=re.S)
    return {name: int(value) for name, value in _EAI.findall(text)}


def windows_eai() -> dict[str, tuple[str, int]]:
    """EAI_* -> (the Windows Sockets name, its number), from MinGW-w64's ws2tcpip.h and the
    headers that number those names (winerror.h, winsock2.h, error.h)."""
    ws2tcpip = MINGW_INCLUDE / "ws2tcpip.h"
    if not ws2tcpip.exists():
        return {}
    defines: dict[str, str] = {}
    for name in ("error.h", "winerror.h", "winsock2.h"):
        path = MINGW_INCLUDE / name
        if path.exists():
            text = re.sub(r"/\*.*?\*/", " ", path.read_text(errors="replace"), flags=re.S)
            for key, value in re.findall(r"^\s*#\s*define\s+(\w+)\s+(.+?)\s*$", text, flags=re.M):
                # winerror.h wraps numbers as __MSABI_LONG(8)
                defines.setdefault(key, re.sub(r"__MSABI_LONG\((\w+)\)", r"\1", value))
    numbers = _resolve(defines, "")
    text = re.sub(r"/\*.*?\*/", " ", ws2tcpip.read_text(errors="replace"), flags=re.S)
    out = {}
    for name, value in re.findall(r"^\s*#\s*define\s+(EAI_\w+)\s+(\w+)\s*$", text, flags=re.M):
        if value.isdigit():  # EAI_NODATA is given as 11004 with WSANO_DATA in a comment
            wsa = next((k for k, v in numbers.items() if k.startswith("WSA") and v == int(value)), value)
            out[name] = (wsa, int(value))
        elif value in numbers:
            out[name] = (value, numbers[value])
    return out


def libuv_eai() -> dict[str, int]:
    """EAI_* -> libuv's own negative code (UV__EAI_NONAME is -3008), from uv/errno.h."""
    if not LIBUV_ERRNO.exists():
        return {}
    return {name[4:]: int(value) for name, value in
            re.findall(r"^\s*#\s*define\s+(UV__EAI_\w+)\s+\((-\d+)\)", LIBUV_ERRNO.read_text(), flags=re.M)}
