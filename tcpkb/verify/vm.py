"""Run `tcpkb verify` on another kernel: Debian's generic kernel booted in QEMU, no network device.

The guest is this machine seen through a window: QEMU exports the host's `/` read-only over
virtio-9p, and a second, writable 9p share for the results. A busybox initramfs makes the first
the lower layer of an overlay (writes land in guest memory), loads the modules the proof needs
from the kernel's own package, and runs the host's Python on the host's tcpkb inside. The
guest has no network device at all (`-nic none`, `-nodefaults`): every packet a scenario sends
stays in the namespaces it creates inside the guest. QEMU runs under TCG (no KVM needed), in
its own session, bounded by a timeout, and is killed on timeout, failure and Ctrl-C.

Kernels come from the package registry the machine already uses: a series such as `6.1` is
resolved to the newest `linux-image-6.1.*-amd64-unsigned` apt offers, fetched with
`apt-get download`, unpacked with `dpkg-deb -x` into the cache and indexed with `depmod`
(the package ships no modules.dep; its postinst makes one). The `-cloud` flavour lacks 9p.
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import os
import platform
import re
import selectors
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from .. import kernels, paths
from .needs import GUEST_FLAG

QEMU = "qemu-system-x86_64"
BUSYBOX = ("/bin/busybox", "/usr/bin/busybox")
# Loaded by the initramfs before the root exists, in modules.dep order (those built in are skipped).
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
# Loaded in the guest before the run: TUN peers, the conntrack knobs, nf_tables and the sock_diag
# handlers, so that no timed scenario pays for a module load under TCG (5.6 s for nf_tables on
# first use; a diag dump that loaded tcp_diag on the way once came back empty on 6.1).
PROOF_MODULES = ("tun", "nf_conntrack", "nf_tables", "inet_diag", "tcp_diag")
RESULTS_TAG, ROOT_TAG = "tcpkbresults", "hostroot"
GUEST_RESULTS = "/run/tcpkb-results"  # where the writable share appears in the guest
MARK = "tcpkb-vm:"  # the prefix of the initramfs's own console lines
TIMEOUT_S = 900.0
WATCHDOG_SCALE = 3  # each scenario's watchdog in the guest: CPU-bound work is slower under TCG
MEMORY_MB = 2048


class VmError(Exception):
    """Something the user can fix (no such kernel, no qemu …): one line, exit status 2."""


@dataclass(frozen=True)
class Kernel:
    vmlinuz: str
    modules: str  # lib/modules/<release> with a modules.dep
    release: str


# -- which kernel ------------------------------------------------------------------------------

def bzimage_release(path: str) -> str:
    """The release a bzImage carries in its setup header ('6.1.0-57-amd64')."""
    try:
        with open(path, "rb") as f:
            head = f.read(0x10000)
    except OSError as e:
        raise VmError(f"cannot read {path}: {e.strerror}") from None
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        raise VmError(f"{path} is not a bzImage kernel (no HdrS setup header)")
    (offset,) = struct.unpack_from("<H", head, 0x20E)
    start = offset + 0x200  # kernel_version points into the setup code, which begins at 0x200
    text = head[start:head.find(b"\0", start)].decode("ascii", "replace")
    if not text.split():
        raise VmError(f"{path} carries no kernel version string")
    return text.split()[0]


def package_name(version: str, flavour: str = "amd64") -> str:
    return f"linux-image-{version}-{flavour}-unsigned"


def newest_package(series: str, names: list[str], flavour: str = "amd64") -> str | None:
    """The newest generic image of a series among package names ('6.1' -> linux-image-6.1.0-57-…)."""
    pattern = re.compile(rf"linux-image-({re.escape(series)}\.[0-9][^-]*(?:-[0-9]+)?)-{flavour}-unsigned")
    found = [(tuple(int(n) for n in re.findall(r"\d+", m.group(1))), name)
             for name in names if (m := pattern.fullmatch(name.strip()))]
    return max(found)[1] if found else None


def apt(*args: str, cwd: str | None = None, timeout: float = 300) -> str:
    try:
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise VmError(f"{args[0]} not found: fetching a kernel needs Debian's apt") from None
    except subprocess.TimeoutExpired:
        raise VmError(f"{' '.join(args)} took over {timeout:.0f} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise VmError(f"{' '.join(args)} failed: {last}")
    return done.stdout


def resolve(spec: str, run=apt) -> Kernel:
    """A vmlinuz path, a Debian series ('6.1', '6.12') or an ABI ('6.1.0-57') -> a kernel ready to boot."""
    if os.sep in spec or os.path.exists(spec):
        return local_kernel(spec)
    if re.fullmatch(r"\d+\.\d+", spec):
        name = newest_package(spec, run("apt-cache", "pkgnames", f"linux-image-{spec}.").split())
        if name is None:
            raise VmError(f"apt offers no linux-image-{spec}.*-amd64-unsigned "
                          "(run apt-get update, or add the suite that has it)")
    elif re.fullmatch(r"\d+\.\d+\.\d+[-+][\w.+-]*", spec):
        name = package_name(spec)
    else:
        raise VmError(f"no such kernel {spec!r}: give a vmlinuz path or a Debian series such as 6.1")
    kernel = unpacked(name, run)
    if kernels.series(kernel.release) != kernels.series(spec):  # the image is what it was asked for
        raise VmError(f"{name} holds a {kernel.release} kernel, not {spec}")
    return kernel


def local_kernel(path: str) -> Kernel:
    if not os.path.isfile(path):
        raise VmError(f"no such kernel image: {path}")
    release = bzimage_release(path)
    here = os.path.dirname(os.path.abspath(path))
    for modules in (os.path.join(here, "..", "lib", "modules", release),
                    os.path.join(here, "..", "usr", "lib", "modules", release),
                    os.path.join("/lib/modules", release)):
        if os.path.isfile(os.path.join(modules, "modules.dep")):
            return Kernel(os.path.abspath(path), os.path.realpath(modules), release)
    raise VmError(f"no modules for {release} beside {path} or in /lib/modules "
                  "(unpack its package and run depmod -b DIR RELEASE)")


def kernel_cache() -> str:
    return os.path.join(paths.cache_dir(), "kernels")


def unpacked(name: str, run=apt) -> Kernel:
    """The package unpacked in the cache (fetched, unpacked and indexed the first time)."""
    home = os.path.join(kernel_cache(), name)
    if not os.path.exists(os.path.join(home, ".complete")):
        fetch(name, home, run)
    images = sorted(f for f in os.listdir(os.path.join(home, "boot")) if f.startswith("vmlinuz-"))
    if not images:
        raise VmError(f"{name} holds no boot/vmlinuz-*")
    return local_kernel(os.path.join(home, "boot", images[-1]))


def fetch(name: str, home: str, run=apt) -> None:
    for tool in ("dpkg-deb", "depmod"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            raise VmError(f"{tool} not found: apt-get install {'kmod' if tool == 'depmod' else 'dpkg'}")
    os.makedirs(kernel_cache(), exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{name}-", dir=kernel_cache())
    try:  # unpack beside the cache entry, then rename: an interrupted fetch leaves nothing half-made
        run("apt-get", "download", name, cwd=work)
        debs = [f for f in os.listdir(work) if f.endswith(".deb")]
        if len(debs) != 1:
            raise VmError(f"apt-get download {name} gave {len(debs)} packages")
        tree = os.path.join(work, "tree")
        run("dpkg-deb", "-x", os.path.join(work, debs[0]), tree)
        for release in os.listdir(os.path.join(tree, "lib", "modules")):
            run(shutil.which("depmod") or "/usr/sbin/depmod", "-b", tree, release)
        open(os.path.join(tree, ".complete"), "w").close()
        shutil.rmtree(home, ignore_errors=True)
        os.replace(tree, home)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- the initramfs -----------------------------------------------------------------------------

def module_order(modules: str, wanted: tuple[str, ...]) -> list[str]:
    """Paths (relative to `modules`) to load so that each wanted module follows its dependencies;
    a wanted module that is built in (modules.builtin) or absent is left out."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    with open(os.path.join(modules, "modules.dep")) as f:
        for line in f:
            path, _, rest = line.partition(":")
            deps[path] = rest.split()
            by_name[module_name(path)] = path
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in reversed(deps.get(path, [])):  # modules.dep lists a module's needs last-first
            visit(dep)
        order.append(path)

    for name in wanted:
        if name in by_name:
            visit(by_name[name])
    return order


def module_name(path: str) -> str:
    return os.path.basename(path).split(".ko")[0].replace("-", "_")


def module_bytes(path: str) -> bytes:
    """A module file, decompressed: busybox's insmod hands the kernel the bytes as they are."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        raise VmError(f"{path}: zstd-compressed modules are not supported (Python has no zstd)")
    return data


def init_script(kernel: Kernel, command: list[str], env: dict[str, str], cwd: str) -> str:
    """/init: mount the host read-only under an overlay, load modules, run the command, power off."""
    q = shell_quote
    nine_p = "trans=virtio,version=9p2000.L,msize=262144"
    exports = " ".join(f"{k}={q(v)}" for k, v in sorted(env.items()))
    return f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
say() {{ echo "{MARK} $*"; }}
die() {{ say "FAILED: $*"; poweroff -f; }}
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for m in /modules/*.ko; do insmod "$m" || die "insmod $m"; done
mount -t 9p -o {nine_p},ro,cache=loose {ROOT_TAG} /lower || die "mount the host's / over 9p"
mount -t tmpfs -o mode=0755 tmpfs /rw && mkdir /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot \\
  || die "mount the overlay"
R=/newroot
for d in proc sys dev {GUEST_RESULTS} /lib/modules/{kernel.release}; do mkdir -p "$R/$d"; done
mount -t proc proc $R/proc; mount -t sysfs sysfs $R/sys; mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts && mount -t devpts devpts $R/dev/pts  # pseudo-terminals (an AX.25 port)
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mount -t 9p -o {nine_p} {RESULTS_TAG} $R{GUEST_RESULTS} || die "mount the results share"
mount --bind $R{q(kernel.modules)} $R/lib/modules/{kernel.release} || die "bind the modules"
chroot $R /sbin/modprobe -a {" ".join(PROOF_MODULES)} || say "WARNING: could not load {" ".join(PROOF_MODULES)}"
say "ready $(cat /proc/uptime)"
chroot $R /bin/sh -c {q(f"cd {q(cwd)} && exec env -i {exports} {' '.join(map(q, command))}")}
echo $? > $R{GUEST_RESULTS}/status
say "done $(cat /proc/uptime)"
say "modules $(cut -d' ' -f1 /proc/modules | tr '\\n' ' ')"
sync; umount $R{GUEST_RESULTS}
poweroff -f
"""


# The kernel's own module requests (request_module) run /sbin/modprobe in the initramfs root,
# which is not the chroot: hand them to the host's modprobe inside it.
MODPROBE_SHIM = "#!/bin/busybox sh\nexec /bin/busybox chroot /newroot /sbin/modprobe \"$@\"\n"


def shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def static_busybox() -> str:
    """A statically linked busybox (the busybox-static package): the initramfs has no libc."""
    for path in BUSYBOX:
        if os.path.isfile(path):
            if not is_static(path):
                raise VmError(f"{path} is dynamically linked: apt-get install busybox-static")
            return path
    raise VmError("busybox not found: apt-get install busybox-static")


def is_static(path: str) -> bool:
    """No PT_INTERP program header: the ELF needs no dynamic loader."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def initramfs(kernel: Kernel, init: str, busybox: str) -> bytes:
    """A gzip'd newc cpio: busybox, /init, the boot modules in load order, and the modprobe shim."""
    archive = Cpio()
    for d in ("bin", "sbin", "dev", "proc", "sys", "lower", "rw", "newroot", "modules"):
        archive.add(d, stat.S_IFDIR | 0o755)
    archive.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    with open(busybox, "rb") as f:
        archive.add("bin/busybox", stat.S_IFREG | 0o755, f.read())
    archive.add("init", stat.S_IFREG | 0o755, init.encode())
    archive.add("sbin/modprobe", stat.S_IFREG | 0o755, MODPROBE_SHIM.encode())
    for i, rel in enumerate(module_order(kernel.modules, BOOT_MODULES)):
        data = module_bytes(os.path.join(kernel.modules, rel))
        archive.add(f"modules/{i:02d}-{module_name(rel)}.ko", stat.S_IFREG | 0o644, data)
    return gzip.compress(archive.close(), compresslevel=1)


class Cpio:
    """The "newc" cpio format the kernel unpacks an initramfs from."""

    def __init__(self):
        self.out = io.BytesIO()
        self.inode = 1

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        fields = (self.inode, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data),
                  0, 0, rdev[0], rdev[1], len(name) + 1, 0)
        self.inode += 1
        self.out.write(b"070701" + b"".join(b"%08X" % v for v in fields))
        self.out.write(name.encode() + b"\0")
        self._pad()
        self.out.write(data)
        self._pad()

    def _pad(self) -> None:
        self.out.write(b"\0" * (-self.out.tell() % 4))

    def close(self) -> bytes:
        self.add("TRAILER!!!", 0)
        return self.out.getvalue()


# -- the machine -------------------------------------------------------------------------------

def qemu_command(kernel: Kernel, initrd: str, results: str, cpus: int, memory_mb: int = MEMORY_MB) -> list[str]:
    """QEMU under TCG with a serial console, two 9p shares and no network device of any kind."""
    share = "local,security_model=none,multidevs=remap"
    # One host thread for all vCPUs: with multi-threaded TCG, 6.12 now and then died at boot on
    # an int3 the kernel had just patched away (text_poke_bp in sched_clock_cpu, 1 boot in 16).
    return [QEMU, "-machine", "q35", "-accel", "tcg,thread=single", "-cpu", "max",
            "-smp", str(cpus), "-m", str(memory_mb),
            "-nodefaults", "-nic", "none", "-display", "none", "-monitor", "none",
            "-serial", "stdio", "-no-reboot",
            "-kernel", kernel.vmlinuz, "-initrd", initrd,
            # panic=-1 with -no-reboot: a guest panic ends QEMU at once; the CPU-bug mitigations
            # only cost time under emulation and change nothing a scenario looks at; GUEST_FLAG
            # tells scenarios that change machine-wide settings that this machine is theirs
            "-append", f"console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off {GUEST_FLAG}",
            "-virtfs", f"{share},path=/,mount_tag={ROOT_TAG},readonly=on",
            "-virtfs", f"{share},path={results},mount_tag={RESULTS_TAG}"]


def boot(command: list[str], timeout: float, on_line=None, log: list[str] | None = None) -> int:
    """Run QEMU until the guest powers off; kill it (its whole session) on timeout or Ctrl-C.
    Console lines go to `on_line` and `log`; returns QEMU's exit status."""
    log = [] if log is None else log
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except FileNotFoundError:
        raise VmError(f"{command[0]} not found: apt-get install qemu-system-x86") from None
    deadline = time.monotonic() + timeout
    pending = b""
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise VmError(f"the VM did not finish within {timeout:.0f} s" + tail(log))
                if not sel.select(timeout=min(left, 1.0)):
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                for raw in lines:
                    line = raw.decode("utf-8", "replace").rstrip("\r")
                    log.append(line)
                    if on_line:
                        on_line(line)
        return proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise VmError(f"QEMU did not exit within {timeout:.0f} s" + tail(log)) from None
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
    proc.wait()
    proc.stdout.close()


def tail(log: list[str], lines: int = 15) -> str:
    shown = [line for line in log if line.strip()][-lines:]
    return ("; the console ended with:\n  " + "\n  ".join(shown)) if shown else ""


def check_host() -> None:
    if platform.machine() != "x86_64":
        raise VmError(f"the VM runner boots amd64 kernels; this machine is {platform.machine()}")
    if shutil.which(QEMU) is None:
        raise VmError(f"{QEMU} not found: apt-get install qemu-system-x86")
    if not os.path.exists("/sbin/modprobe"):
        raise VmError("/sbin/modprobe not found (the guest uses this machine's): apt-get install kmod")


def guest_env(share: str) -> dict[str, str]:
    """The environment of the run inside: this package first on the path, results to the share."""
    source = os.path.dirname(paths.PACKAGE)
    keep = {k: os.environ[k] for k in ("HOME", "XDG_CACHE_HOME", "TCPKB_KB", "TCPKB_DB", "LANG")
            if k in os.environ}
    return {**keep, "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONPATH": source + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""),
            "TCPKB_RESULTS": os.pathsep.join([*paths.results_dirs(), share]),
            "NO_COLOR": "1", "PYTHONDONTWRITEBYTECODE": "1",
            "TCPKB_WATCHDOG_SCALE": str(WATCHDOG_SCALE)}


def run_in_vm(kernel: Kernel, args: list[str], timeout: float = TIMEOUT_S, on_line=None,
              cpus: int | None = None) -> dict:
    """Boot `kernel`, run `python -m tcpkb verify ARGS` inside, and return what came back:
    {status (the guest command's exit status), results (the guest's results file), console,
    boot_s (QEMU start to the guest's root ready), run_s (guest uptime from then to the end)}."""
    check_host()
    busybox = static_busybox()
    command = [sys.executable, "-m", "tcpkb", "verify", *args]
    began = time.monotonic()
    marks: dict[str, float] = {}

    def seen(line: str) -> None:
        if line.startswith(MARK):
            words = line.split()
            if len(words) >= 4 and words[1] in ("ready", "done"):
                marks[words[1]] = float(words[2])  # guest uptime
                marks.setdefault("ready_at", time.monotonic() - began)
        if on_line:
            on_line(line)

    with tempfile.TemporaryDirectory(prefix="tcpkb-vm-") as tmp:
        share = os.path.join(tmp, "results")
        os.mkdir(share)
        initrd = os.path.join(tmp, "initramfs.cpio.gz")
        init = init_script(kernel, command, guest_env(GUEST_RESULTS), os.getcwd())
        with open(initrd, "wb") as f:
            f.write(initramfs(kernel, init, busybox))
        log: list[str] = []
        boot(qemu_command(kernel, initrd, share, cpus or min(4, os.cpu_count() or 1)),
             timeout, seen, log)
        status, data = collect(share, log)
    return {"status": status, "results": data, "console": log,
            "boot_s": round(marks.get("ready_at", 0.0), 1),
            "run_s": round(marks.get("done", 0.0) - marks.get("ready", 0.0), 1)}


def collect(share: str, log: list[str]) -> tuple[int, dict]:
    """The guest command's exit status and the one results file it wrote to the share."""
    failed = [line for line in log if line.startswith(f"{MARK} FAILED")]
    if failed:
        raise VmError(f"the guest could not start: {failed[0][len(MARK):].strip()}" + tail(log))
    try:
        with open(os.path.join(share, "status")) as f:
            status = int(f.read().strip() or "1")
    except (OSError, ValueError):
        started = any(line.startswith(f"{MARK} ready") for line in log)
        raise VmError(("the guest stopped before tcpkb verify finished" if started
                       else "the guest stopped before its root was ready") + tail(log)) from None
    if status not in (0, 1):  # 0 all passed, 1 some failed: anything else is the run breaking
        raise VmError(f"tcpkb verify in the guest exited with status {status}" + tail(log))
    files = [name for name in os.listdir(share) if name.endswith(".json")]
    if len(files) != 1:
        raise VmError(f"tcpkb verify in the guest exited with {status} and wrote "
                      f"{len(files)} results files" + tail(log))
    try:
        with open(os.path.join(share, files[0]), encoding="utf-8") as f:
            data = json.load(f)
    except ValueError as e:
        raise VmError(f"the guest's results file {files[0]} is not JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise VmError(f"the guest's {files[0]} is not a tcpkb results file")
    return status, data
