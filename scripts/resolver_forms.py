"""Print what real programs on this machine say when getaddrinfo() fails, for the kb/resolver notes.

    python scripts/resolver_forms.py [--json] [--only PROGRAM]

Runs as root: a forked child makes its own network and mount namespaces, starts the loopback
DNS responder of tcpkb/verify/dns.py and points /etc/resolv.conf at it (timeout:1 attempts:1),
then runs each program below that is installed against a name the responder answers with
NXDOMAIN, SERVFAIL, nothing, or an empty NOERROR answer (NODATA). No real resolver is asked.
The lines printed are the `printed` forms of the notes, each with the program's version.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcpkb.machine import netns  # noqa: E402
from tcpkb.verify import dns  # noqa: E402

NAMES = {"nxdomain": "db.nxdomain.test", "servfail": "db.servfail.test", "silent": "db.silent.test",
         "nodata": "db.nodata.test", "refused": "db.refused.test", "notimp": "db.notimp.test"}
SCRIPT = {NAMES["nxdomain"]: "NXDOMAIN", NAMES["servfail"]: "SERVFAIL", NAMES["silent"]: "SILENT",
          NAMES["nodata"]: "ADDRESS", NAMES["refused"]: "REFUSED", NAMES["notimp"]: "NOTIMP"}
RESOLV = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
TIMEOUT_S = 20

# twice: the second answer comes from the JDK's negative cache, whose exception names the host alone
JAVA = """public class Lookup { public static void main(String[] a) {
  for (int i = 0; i < 2; i++) { try { java.net.InetAddress.getByName(a[0]); }
  catch (Exception e) { System.out.println(e); } } } }"""
RUST = """fn main() { let host = std::env::args().nth(1).unwrap();
  match std::net::TcpStream::connect((host.as_str(), 80)) { Ok(_) => {}, Err(e) => { println!("{}", e); println!("{:?}", e); } } }"""
MUSL_C = r"""#include <stdio.h>
#include <netdb.h>
int main(int c, char **v) { struct addrinfo *r; int e = getaddrinfo(v[1], "80", 0, &r);
  printf("getaddrinfo: %d %s\n", e, gai_strerror(e)); return 0; }"""
PERL = 'IO::Socket::INET->new(PeerAddr => "$ARGV[0]:6379", Timeout => 2) or print "$@\\n"'
# apt-get update against a sources list naming the host, its lists in a directory of its own
APT = ('d=$(mktemp -d) && mkdir -p "$d/partial" && echo "deb http://$1/debian bookworm main" > "$d/s.list" && '
       'apt-get -q -o Dir::State::Lists="$d" -o Dir::Etc::SourceList="$d/s.list" -o Dir::Etc::SourceParts=/nonexistent '
       '-o Debug::NoLocking=1 -o APT::Sandbox::User=root -o Acquire::Retries=0 update; rm -rf "$d"')
NODE = ("const host = process.argv[1];"
        "require('dns').lookup(host, (e) => console.log(e));")


def programs(work: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (argv before the host, version), for what is installed."""
    out: dict[str, tuple[list[str], str]] = {}

    def version(argv: list[str]) -> str:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S)
        return (p.stdout or p.stderr).strip().splitlines()[0]

    out["Python"] = ([sys.executable, "-c", "import socket, sys; socket.getaddrinfo(sys.argv[1], 80)"],
                     f"Python {sys.version.split()[0]}")
    out["Python urllib"] = ([sys.executable, "-c", "import sys, urllib.request; "
                             "urllib.request.urlopen('http://' + sys.argv[1] + '/')"],
                            f"Python {sys.version.split()[0]}")
    if shutil.which("curl"):
        out["curl"] = (["curl", "-sS", "-o", "/dev/null"], version(["curl", "--version"]))
    if shutil.which("wget"):
        out["wget"] = (["wget", "--tries=1", "-O", "/dev/null"], version(["wget", "--version"]))
    if shutil.which("node"):
        out["Node.js"] = (["node", "-e", NODE], "Node.js " + version(["node", "--version"]))
    if shutil.which("java"):
        (work / "Lookup.java").write_text(JAVA)
        out["Java"] = (["java", str(work / "Lookup.java")], version(["java", "-version"]))
    if shutil.which("rustc"):
        (work / "lookup.rs").write_text(RUST)
        subprocess.run(["rustc", "-O", "-o", str(work / "lookup-rs"), str(work / "lookup.rs")],
                       check=True, timeout=120, capture_output=True)
        out["Rust"] = ([str(work / "lookup-rs")], version(["rustc", "--version"]))
    if shutil.which("musl-gcc"):
        (work / "gai.c").write_text(MUSL_C)
        subprocess.run(["musl-gcc", "-static", "-o", str(work / "gai-musl"), str(work / "gai.c")],
                       check=True, timeout=120, capture_output=True)
        out["musl"] = ([str(work / "gai-musl")], "musl " + _dpkg("musl"))
    if shutil.which("busybox"):  # Alpine's ping and nslookup (nslookup asks the resolv.conf server itself)
        ver = version(["busybox", "--help"])
        out["busybox ping"] = (["busybox", "ping", "-c", "1", "-W", "1"], ver)
        out["busybox nslookup"] = (["busybox", "nslookup"], ver)
    if shutil.which("perl"):
        out["Perl IO::Socket::INET"] = (["perl", "-MIO::Socket::INET", "-e", PERL],
                                        "perl " + version(["perl", "-e", "print $^V"]))
    if shutil.which("apt-get"):
        out["apt"] = (["sh", "-c", APT, "apt"], version(["apt-get", "--version"]))
    if shutil.which("kubectl"):  # a Go program: Go's own resolver reads /etc/resolv.conf
        out["Go (kubectl)"] = (["kubectl", "get", "pods", "--request-timeout=5s", "--token=none",
                                "--server"],
                               version(["kubectl", "version", "--client"]))
    return out


def shown(prog: str, lines: list[str]) -> list[str]:
    """The lines that carry the error: a traceback's last, a Java stack trace's first."""
    if prog.startswith("Python"):
        return lines[-1:]
    if prog == "Node.js":  # the error's first line, and its errno and code as Node prints them
        return [ln.strip() for ln in lines if not ln.strip().startswith(("at ", "syscall", "hostname", "}"))]
    return [ln for ln in lines if not ln.startswith(("--", "Connecting"))][-3:]


def _dpkg(package: str) -> str:
    p = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return p.stdout.strip() or "unknown"


def run_all(only: str | None = None) -> dict:
    netns.enter_new_netns()
    dns.private_resolver(RESOLV)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="tcpkb-forms-", dir="/tmp") as tmp, dns.Responder(SCRIPT):
        progs = programs(Path(tmp))
        if only:
            progs = {k: v for k, v in progs.items() if k.startswith(only)}
        for prog, (argv, ver) in progs.items():
            for answer, host in NAMES.items():
                target = f"https://{host}:6443" if prog.startswith("Go") else host
                p = subprocess.run(argv + [target], capture_output=True, text=True, timeout=TIMEOUT_S,
                                   env={**os.environ, "KUBECONFIG": "/dev/null"})
                lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
                results.setdefault(prog, {"version": ver, "answers": {}})["answers"][answer] = shown(prog, lines)
    return results


def main() -> int:
    if os.geteuid() != 0:
        print("resolver_forms: run as root (it makes network and mount namespaces)", file=sys.stderr)
        return 2
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv[:-1] else None
            payload = json.dumps(run_all(only), ensure_ascii=False)
        except Exception as e:  # reported by the parent
            payload = json.dumps({"error": f"{type(e).__name__}: {e}"})
        with os.fdopen(w, "w") as f:
            f.write(payload)
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    os.waitpid(pid, 0)
    result = json.loads(data or '{"error": "no output"}')
    if "error" in result:
        print(f"resolver_forms: {result['error']}", file=sys.stderr)
        return 1
    if "--json" in sys.argv:
        print(json.dumps(result, indent=1, ensure_ascii=False))
        return 0
    for prog, found in result.items():
        print(f"== {prog} ({found['version']})")
        for answer, lines in found["answers"].items():
            print(f"  {answer}:")
            for line in lines:
                print(f"    {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
