"""The VM runner: kernel resolution, the initramfs, QEMU's command line, cleanup, and one real boot
when this machine has QEMU and a kernel in the cache (CI runs the whole matrix itself)."""

from __future__ import annotations

import gzip
import json
import lzma
import os
import platform
import shutil
import stat
import struct
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tcpkb.build.database import build
from tcpkb.cli import app
from tcpkb.verify import Scenario, needs, vm
from tcpkb.verify.runner import run

from .conftest import KB

# -- fakes ---------------------------------------------------------------------------------------


def fake_bzimage(path: Path, release: str) -> Path:
    """Enough of a bzImage for its release: the setup header's magic and version pointer."""
    image = bytearray(0x1000)
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", image, 0x20E, 0x300)
    text = f"{release} (builder@example) #1 SMP".encode() + b"\0"
    image[0x500:0x500 + len(text)] = text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(image))
    return path


def fake_tree(root: Path, release: str) -> vm.Kernel:
    """An unpacked kernel package: vmlinuz, and modules (one xz-compressed) with a modules.dep."""
    fake_bzimage(root / "boot" / f"vmlinuz-{release}", release)
    mods = root / "lib" / "modules" / release
    files = {"kernel/drivers/virtio/virtio.ko": b"VIRTIO", "kernel/drivers/virtio/virtio_ring.ko": b"RING",
             "kernel/drivers/virtio/virtio_pci.ko": b"PCI", "kernel/net/9p/9pnet.ko": b"NET",
             "kernel/net/9p/9pnet_virtio.ko": b"NETV", "kernel/fs/netfs/netfs.ko.xz": lzma.compress(b"NETFS"),
             "kernel/fs/9p/9p.ko": b"NINEP", "kernel/drivers/net/tun.ko": b"TUN"}
    for rel, data in files.items():
        (mods / rel).parent.mkdir(parents=True, exist_ok=True)
        (mods / rel).write_bytes(data)
    # overlay is built in: absent from modules.dep, so it is not loaded
    (mods / "modules.dep").write_text(
        "kernel/drivers/virtio/virtio.ko:\n"
        "kernel/drivers/virtio/virtio_ring.ko:\n"
        "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
        "kernel/net/9p/9pnet.ko:\n"
        "kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio_ring.ko\n"
        "kernel/fs/netfs/netfs.ko.xz:\n"
        "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko.xz\n"
        "kernel/drivers/net/tun.ko:\n")
    return vm.Kernel(str(root / "boot" / f"vmlinuz-{release}"), str(mods), release)


def static_elf(path: Path) -> Path:
    """An ELF64 header with one PT_LOAD program header and no PT_INTERP: 'static'."""
    header = bytearray(64)
    header[:5] = b"\x7fELF\x02"
    struct.pack_into("<Q", header, 0x20, 64)  # e_phoff
    struct.pack_into("<HH", header, 0x36, 56, 1)  # e_phentsize, e_phnum
    program = struct.pack("<I", 1) + bytes(52)
    path.write_bytes(bytes(header) + program)
    return path


def read_cpio(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """name -> (mode, contents, rdev) from a newc archive."""
    out, at = {}, 0
    while True:
        fields = [int(data[at + 6 + 8 * i: at + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rdev, namesize = fields[1], fields[6], (fields[9], fields[10]), fields[11]
        name = data[at + 110: at + 110 + namesize - 1].decode()
        at += 110 + namesize
        at += -at % 4
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, data[at: at + size], rdev)
        at += size
        at += -at % 4


# -- which kernel ------------------------------------------------------------------------------

APT_NAMES = """linux-image-6.1.0-9-amd64-unsigned linux-image-6.1.0-57-amd64-unsigned
linux-image-6.1.0-57-cloud-amd64-unsigned linux-image-6.1.0-57-rt-amd64-unsigned
linux-image-6.1.0-50-amd64-unsigned linux-image-6.12.118+deb12-amd64-unsigned
linux-image-6.12.9+deb12-amd64-unsigned linux-image-6.12.118+deb12-cloud-amd64-unsigned""".split()


def test_newest_generic_package_of_a_series():
    assert vm.newest_package("6.1", APT_NAMES) == "linux-image-6.1.0-57-amd64-unsigned"
    assert vm.newest_package("6.12", APT_NAMES) == "linux-image-6.12.118+deb12-amd64-unsigned"
    assert vm.newest_package("6.6", APT_NAMES) is None


def test_bzimage_release(tmp_path):
    image = fake_bzimage(tmp_path / "vmlinuz", "6.1.0-57-amd64")
    assert vm.bzimage_release(str(image)) == "6.1.0-57-amd64"
    (tmp_path / "text").write_text("not a kernel")
    with pytest.raises(vm.VmError, match="not a bzImage"):
        vm.bzimage_release(str(tmp_path / "text"))


def test_series_resolves_through_apt_to_the_cached_package(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    name = "linux-image-6.1.0-57-amd64-unsigned"
    home = tmp_path / "tcpkb" / "kernels" / name
    fake_tree(home, "6.1.0-57-amd64")
    (home / ".complete").touch()
    asked = []

    def apt(*args, cwd=None, timeout=300):
        asked.append(args)
        return "\n".join(APT_NAMES) + "\n"

    kernel = vm.resolve("6.1", run=apt)
    assert asked == [("apt-cache", "pkgnames", "linux-image-6.1.")]  # cached: nothing downloaded
    assert kernel.release == "6.1.0-57-amd64"
    assert kernel.vmlinuz == str(home / "boot" / "vmlinuz-6.1.0-57-amd64")
    assert kernel.modules == str(home / "lib" / "modules" / "6.1.0-57-amd64")


def test_an_image_of_another_series_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    home = tmp_path / "tcpkb" / "kernels" / "linux-image-6.1.0-57-amd64-unsigned"
    fake_tree(home, "6.12.118+deb12-amd64")
    (home / ".complete").touch()
    with pytest.raises(vm.VmError, match="holds a 6.12.118.deb12-amd64 kernel, not 6.1"):
        vm.resolve("6.1", run=lambda *a, **k: "\n".join(APT_NAMES))


@pytest.mark.parametrize("spec, message", [("6.6", "apt offers no linux-image-6.6"),
                                           ("latest", "no such kernel 'latest'"),
                                           ("/no/such/vmlinuz", "no such kernel image")])
def test_bad_kernel_specs_say_what_is_wrong(spec, message):
    with pytest.raises(vm.VmError, match=message):
        vm.resolve(spec, run=lambda *a, **k: "\n".join(APT_NAMES))


def test_a_vmlinuz_path_finds_its_modules_beside_it(tmp_path):
    kernel = fake_tree(tmp_path / "pkg", "6.12.118+deb12-amd64")
    assert vm.resolve(kernel.vmlinuz).modules == os.path.realpath(kernel.modules)
    os.unlink(Path(kernel.modules) / "modules.dep")
    with pytest.raises(vm.VmError, match="depmod"):
        vm.resolve(kernel.vmlinuz)


# -- the initramfs -----------------------------------------------------------------------------

def test_module_order_puts_dependencies_first_and_skips_built_ins(tmp_path):
    kernel = fake_tree(tmp_path, "6.1.0-57-amd64")
    order = [vm.module_name(p) for p in vm.module_order(kernel.modules, vm.BOOT_MODULES)]
    assert order == ["virtio_ring", "virtio", "virtio_pci", "9pnet", "9pnet_virtio", "netfs", "9p"]


def test_initramfs_holds_busybox_init_the_modules_and_a_modprobe_shim(tmp_path):
    kernel = fake_tree(tmp_path / "pkg", "6.1.0-57-amd64")
    busybox = static_elf(tmp_path / "busybox")
    init = vm.init_script(kernel, ["/usr/bin/python3", "-m", "tcpkb", "verify"], {"A": "it's"}, "/src")
    files = read_cpio(gzip.decompress(vm.initramfs(kernel, init, str(busybox))))
    assert files["init"][1].decode() == init and files["init"][0] & 0o111
    assert files["bin/busybox"][1] == busybox.read_bytes()
    assert stat.S_ISCHR(files["dev/console"][0]) and files["dev/console"][2] == (5, 1)
    assert b"chroot /newroot /sbin/modprobe" in files["sbin/modprobe"][1]
    modules = sorted(n for n in files if n.startswith("modules/"))
    assert [files[m][1] for m in modules] == [b"RING", b"VIRTIO", b"PCI", b"NET", b"NETV", b"NETFS", b"NINEP"]
    assert "A=" in init and "verify" in init
    for step in ("lowerdir=/lower", "ro,cache=loose", "-a tun nf_conntrack nf_tables", "poweroff -f",
                 f"mount --bind $R'{kernel.modules}' $R/lib/modules/6.1.0-57-amd64", "tracefs"):
        assert step in init


def test_shell_quote_survives_a_shell():
    text = "it's $HOME `x` \\ \"q\""
    done = subprocess.run(["sh", "-c", "printf %s " + vm.shell_quote(text)], capture_output=True, text=True)
    assert done.stdout == text


def test_a_dynamic_busybox_is_refused(tmp_path, monkeypatch):
    dynamic = bytearray(static_elf(tmp_path / "bb").read_bytes())
    struct.pack_into("<I", dynamic, 64, 3)  # PT_INTERP
    (tmp_path / "bb").write_bytes(bytes(dynamic))
    monkeypatch.setattr(vm, "BUSYBOX", (str(tmp_path / "bb"),))
    with pytest.raises(vm.VmError, match="busybox-static"):
        vm.static_busybox()


# -- the machine -------------------------------------------------------------------------------

def test_qemu_gets_no_network_device(tmp_path):
    kernel = vm.Kernel("/k/vmlinuz", "/k/modules", "6.1.0-57-amd64")
    command = vm.qemu_command(kernel, "/tmp/initrd", "/tmp/results", cpus=2)
    text = " ".join(command)
    assert "-nic none" in text and "-nodefaults" in command
    assert not {"-net", "-netdev"} & set(command)
    devices = [command[i + 1] for i, a in enumerate(command) if a == "-device"]
    assert not [d for d in devices if "net" in d]
    assert "path=/,mount_tag=hostroot,readonly=on" in text
    assert "path=/tmp/results,mount_tag=tcpkbresults" in text
    assert needs.GUEST_FLAG in command[command.index("-append") + 1].split()


def test_a_machine_wide_change_runs_only_in_the_guest(tmp_path, monkeypatch):
    """A "vm:" scenario is skipped on a host, with the setting it would change; the guest is told
    by the flag on its kernel command line, which only the VM runner puts there."""
    def never_runs(lab):
        raise AssertionError("ran")

    cmdline = tmp_path / "cmdline"
    cmdline.write_text("BOOT_IMAGE=/vmlinuz root=/dev/sda1 tcpkb.guest=0\n")
    monkeypatch.setattr(needs, "CMDLINE", str(cmdline))
    done = run([_scenario(never_runs, ("vm:fs.file-max",))])
    assert (done[0]["status"], done[0]["reason"]) == (
        "skipped", "changes fs.file-max for the whole machine: runs only in a VM (tcpkb verify --kernel)")
    cmdline.write_text(f"console=ttyS0 quiet {needs.GUEST_FLAG}\n")
    assert needs.in_vm() and needs.unmet(frozenset({"vm:fs.file-max"})) is None


def test_the_lab_changes_a_machine_wide_knob_only_in_the_guest(tmp_path, monkeypatch):
    """Even a scenario that forgot its "vm:" need cannot touch fs.file-max on a host."""
    def lowers_file_max(lab):
        lab.machine_sysctl("fs.file-max", 16)

    monkeypatch.setattr(needs, "CMDLINE", str(tmp_path / "absent"))
    done = run([_scenario(lowers_file_max, ())])
    assert (done[0]["status"], done[0]["reason"]) == (
        "skipped", "changes fs.file-max for the whole machine: runs only in a VM (tcpkb verify --kernel)")


def fake_qemu(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "qemu"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return script


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] == "Z"
    except FileNotFoundError:
        return True


def _wait_gone(pid: int, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


def test_timeout_kills_qemu_and_what_it_started(tmp_path):
    pids = tmp_path / "pids"
    script = fake_qemu(tmp_path, f"sleep 60 & echo $$ $! > {pids}\necho booting\nsleep 60\n")
    began = time.monotonic()
    with pytest.raises(vm.VmError, match="(?s)did not finish within 1 s.*booting"):
        vm.boot([str(script)], timeout=1.0)
    assert time.monotonic() - began < 5
    for pid in map(int, pids.read_text().split()):
        assert _wait_gone(pid), pid


def test_ctrl_c_kills_qemu(tmp_path):
    pids = tmp_path / "pids"
    script = fake_qemu(tmp_path, f"echo $$ > {pids}\necho first\nsleep 60\n")

    def interrupt(line):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vm.boot([str(script)], timeout=30, on_line=interrupt)
    assert _wait_gone(int(pids.read_text()))


def test_missing_qemu_is_one_clear_line():
    with pytest.raises(vm.VmError, match="apt-get install qemu-system-x86"):
        vm.boot(["/no/such/qemu-system-x86_64"], timeout=5)


def test_run_in_vm_returns_the_guest_results_and_removes_its_files(tmp_path, monkeypatch):
    """A fake QEMU plays the guest: it writes a status and a results file to the results share."""
    kernel = fake_tree(tmp_path / "pkg", "6.1.0-57-amd64")
    seen = tmp_path / "seen"
    results = {"kernel": "6.1.0-57-amd64", "arch": "x86_64", "results": []}
    script = fake_qemu(tmp_path, f"""
for a in "$@"; do case "$a" in *mount_tag=tcpkbresults) share=${{a#*path=}}; share=${{share%%,*}};; esac; done
echo "$share" > {seen}
echo 'tcpkb-vm: ready 2.00 1.00'
echo '{json.dumps(results)}' > "$share/6.1.0-57-amd64-x86_64.json"
echo 0 > "$share/status"
echo 'tcpkb-vm: done 9.50 5.00'
""")
    monkeypatch.setattr(vm, "QEMU", str(script))
    monkeypatch.setattr(vm, "check_host", lambda: None)
    monkeypatch.setattr(vm, "static_busybox", lambda: str(static_elf(tmp_path / "busybox")))
    back = vm.run_in_vm(kernel, ["errno_reset"], timeout=20)
    assert back["status"] == 0 and back["results"] == results and back["run_s"] == 7.5
    assert not os.path.exists(seen.read_text().strip())  # the share and the initramfs are gone


def test_a_guest_that_never_ran_verify_is_an_error_with_its_console(tmp_path, monkeypatch):
    kernel = fake_tree(tmp_path / "pkg", "6.1.0-57-amd64")
    script = fake_qemu(tmp_path, "echo 'tcpkb-vm: FAILED: mount the overlay'\n")
    monkeypatch.setattr(vm, "QEMU", str(script))
    monkeypatch.setattr(vm, "check_host", lambda: None)
    monkeypatch.setattr(vm, "static_busybox", lambda: str(static_elf(tmp_path / "busybox")))
    with pytest.raises(vm.VmError, match="could not start: FAILED: mount the overlay"):
        vm.run_in_vm(kernel, [], timeout=20)


# -- the command line --------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["verify", "--kernel", "no-such-kernel"], "no such kernel 'no-such-kernel'"),
    (["verify", "--kernel", "/no/such/vmlinuz"], "no such kernel image: /no/such/vmlinuz"),
    (["verify", "--kernel", "6.1", "--list"], "does not combine with --list"),
    (["verify", "--kernel", "6.1", "no_such_scenario"], "no scenario, module or proved entry"),
])
def test_bad_kernel_input_exits_2_with_one_line(argv, message, kb_db, monkeypatch):
    monkeypatch.setenv("TCPKB_DB", str(kb_db))
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_missing_qemu_exits_2_with_one_line(tmp_path, kb_db, monkeypatch):
    kernel = fake_tree(tmp_path / "pkg", "6.1.0-57-amd64")
    monkeypatch.setenv("TCPKB_DB", str(kb_db))
    monkeypatch.setattr(vm, "QEMU", "no-such-qemu-system-x86_64")
    monkeypatch.setattr(vm.platform, "machine", lambda: "x86_64")
    result = CliRunner().invoke(app, ["verify", "--kernel", kernel.vmlinuz, "errno_reset"])
    assert result.exit_code == 2, result.output
    assert "no-such-qemu-system-x86_64 not found: apt-get install qemu-system-x86" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


# -- what the kernel lacks is a skip, with the reason ----------------------------------------

def _scenario(fn, needs_: tuple) -> Scenario:
    return Scenario(fn.__name__, "A claim long enough to be a claim about the kernel.", (), fn,
                    "test", needs=frozenset(needs_), timeout=5.0)


def test_a_missing_knob_or_feature_skips_with_the_reason(tmp_path, monkeypatch):
    def never_runs(lab):
        raise AssertionError("ran")

    done = run([_scenario(never_runs, ("sysctl:net.ipv4.tcp_no_such_knob",))])
    assert done[0]["status"] == "skipped"
    assert done[0]["reason"] == f"needs net.ipv4.tcp_no_such_knob, absent on {platform.release()}"
    btf = tmp_path / "btf"
    btf.write_bytes(b"\0TCP_ESTABLISHED\0TCP_CLOSE\0")
    monkeypatch.setattr(needs, "BTF", str(btf))
    assert needs.unmet(frozenset({"btf:TCP_CLOSE"})) is None
    assert "does not define" in needs.unmet(frozenset({"btf:TCP_BOUND_INACTIVE"}))
    monkeypatch.setattr(needs, "BTF", str(tmp_path / "none"))  # no BTF: cannot tell, so it runs
    assert needs.unmet(frozenset({"btf:TCP_BOUND_INACTIVE"})) is None


def test_a_machine_wide_knob_is_told_from_an_absent_one(monkeypatch):
    monkeypatch.setattr(needs, "_host_sysctls", frozenset({"net.core.rmem_max"}))
    assert "machine-wide" in needs.missing_sysctl("net.core.rmem_max")
    assert needs.missing_sysctl("net.ipv4.tcp_tw_reuse_delay").startswith(
        "needs net.ipv4.tcp_tw_reuse_delay, absent on ")


@pytest.mark.skipif(os.geteuid() != 0, reason="writing a knob needs a namespace of its own (root)")
def test_writing_a_knob_this_kernel_lacks_skips():
    def writes(lab):
        lab.sysctl("net.ipv4.tcp_no_such_knob", 1)

    done = run([_scenario(writes, ("netns",))])
    assert (done[0]["status"], done[0]["reason"]) == (
        "skipped", f"needs net.ipv4.tcp_no_such_knob, absent on {platform.release()}")


def test_the_guest_stretches_only_the_watchdog(monkeypatch):
    def takes_a_while(lab):
        time.sleep(0.5)

    slow = Scenario("takes_a_while", "A claim long enough to be a claim about the kernel.", (),
                    takes_a_while, "test", needs=frozenset(), timeout=0.3)
    assert run([slow])[0]["reason"] == "timed out after 0.3 s"
    monkeypatch.setenv("TCPKB_WATCHDOG_SCALE", "3")
    assert run([slow])[0]["status"] == "passed"
    assert vm.guest_env("/run/r")["TCPKB_WATCHDOG_SCALE"] == str(vm.WATCHDOG_SCALE)


# -- one real boot, when this machine can ------------------------------------------------------

def _cached_kernel() -> vm.Kernel | None:
    folder = vm.kernel_cache()
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if os.path.exists(os.path.join(folder, name, ".complete")):
            return vm.unpacked(name)
    return None


@pytest.mark.skipif(shutil.which(vm.QEMU) is None or os.geteuid() != 0 or platform.machine() != "x86_64",
                    reason="needs qemu-system-x86_64 and root")
def test_a_real_boot_runs_a_scenario_in_the_vm(tmp_path, monkeypatch):
    kernel = _cached_kernel()
    if kernel is None:
        pytest.skip("no kernel in the cache: `tcpkb verify --kernel 6.1` fetches one (CI runs the matrix)")
    # a database that is fresh for these results dirs, or the guest would rebuild it under TCG first
    monkeypatch.setenv("TCPKB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("TCPKB_DB", str(tmp_path / "tcpkb.db"))
    build(KB, tmp_path / "tcpkb.db")
    back = vm.run_in_vm(kernel, ["close_with_unread_data_sends_rst", "--no-build"], timeout=180)
    assert back["status"] == 0, vm.tail(back["console"])
    assert back["results"]["kernel"] == kernel.release
    [result] = back["results"]["results"]
    assert result["status"] == "passed" and result["kernel"] == kernel.release
    assert back["boot_s"] < 60, back["boot_s"]
