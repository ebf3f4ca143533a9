"""The lab cluster: one builder and N workers as systemd containers on Docker.

Each node is a Debian container with systemd as PID 1, sshd, a user
`pi` with passwordless sudo reached by key only, gcc/g++, and a stand-in k3s
unit (`k3s` on the builder, `k3s-agent` on workers). distcc is not installed:
the deploys install it for real with apt.

Nodes run this machine's own architecture unless LAB_ARCH (every node) or
LAB_WORKER_ARCHS (the workers one by one, e.g. `arm64,armhf`) asks for arm64
or armhf, the architectures Raspberry Pis run; those run under qemu-user
emulation (lab/ensure_engine.sh registers it), from an image debootstrapped
for that architecture.

LAB_SUITE picks the Debian release of every node: trixie (the default: the
base of the Raspberry Pi OS flashed since 2025-10-01) or bookworm (the one
before); LAB_WORKER_SUITES sets the workers' one by one, for a cluster caught
half-way through an upgrade. Each release has its own images.

LAB_FLAVOR picks what the nodes look like: `fqdn` (the default) as above,
with hostnames in a domain (worker1.distcc.internal); `stock` as a freshly
flashed Raspberry Pi OS Lite: a short hostname on Debian's
`127.0.1.1 NAME` line of /etc/hosts, the other nodes' names resolved by the
network's DNS as a home router does, no `pi` user but a first user of the
owner's choice (LAB_USER, default ada) with passwordless sudo and Debian's
~/.profile, ~/.local/bin as `pip install --user` leaves it, python3, and the
apt-daily timers enabled (lab/image/stock/ says how each is made).

Only the Python standard library and the docker CLI are used, so this module
runs before the virtualenv exists and is imported by `inventories/lab.py`.
nodes(), which that inventory calls on every pyinfra run, asks the Docker
Engine API over its UNIX socket instead when it can (same nodes either way).
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import ipaddress
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGE_DIR = REPO / "lab" / "image"
STATE_DIR = REPO / ".lab"
SSH_KEY = STATE_DIR / "ssh" / "id_ed25519"
# Host keys of the lab's nodes are learned on first connection (accept-new)
# into a file named after the running containers' IDs: a node made anew (by
# this checkout or any other) has new keys, and then also a new file.
KNOWN_HOSTS_DIR = STATE_DIR / "ssh"

PREFIX = os.environ.get("LAB_PREFIX", "distcc-lab")
NETWORK = PREFIX
SUBNET = os.environ.get("LAB_SUBNET", "172.31.250.0/24")
DOMAIN = os.environ.get("LAB_DOMAIN", "distcc.internal")
LABEL = "distcc-lab.role"
# Labs with other prefixes (a second lab on the same engine) are never touched.
PREFIX_LABEL = "distcc-lab.prefix"
IMAGE_NAME = "distcc-lab"
SPEC_LABEL = "distcc-lab.spec"
DEBIAN_MIRROR = os.environ.get("LAB_DEBIAN_MIRROR", "http://deb.debian.org/debian")

# The flags known to run systemd as PID 1 on these machines; --privileged does
# not work here (a capability is missing from the bounding set).
SYSTEMD_RUN_FLAGS = [
    "--cap-add", "SYS_ADMIN",
    "--cap-add", "NET_ADMIN",
    # Real root on a Pi may read every process's sockets (ss -p); in a
    # container that takes SYS_PTRACE.
    "--cap-add", "SYS_PTRACE",
    "--security-opt", "seccomp=unconfined",
    "--tmpfs", "/run",
    "--tmpfs", "/run/lock",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
]

K3S_UNIT_FOR_ROLE = {"builder": "k3s", "worker": "k3s-agent"}

ARCH_LABEL = "distcc-lab.arch"
# Debian architecture -> the qemu-user binary that runs its binaries here.
QEMU_HANDLERS = {"amd64": "qemu-x86_64", "arm64": "qemu-aarch64", "armhf": "qemu-arm"}
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
# Extra recipe for emulated nodes only, kept out of IMAGE_DIR's own files so
# that the native image's tag (its recipe digest) does not change with it.
EMULATED_DIR = IMAGE_DIR / "emulated"

FLAVOR_LABEL = "distcc-lab.flavor"
USER_LABEL = "distcc-lab.user"
# What the nodes look like (LAB_FLAVOR): hostnames in a domain, reached as pi
# (the lab as it always was), or stock Raspberry Pi OS Lite.
FLAVORS = ("fqdn", "stock")
# Extra recipe for stock nodes, appended like EMULATED_DIR's.
STOCK_DIR = IMAGE_DIR / "stock"
DEFAULT_USER = {"fqdn": "pi", "stock": "ada"}

SUITE_LABEL = "distcc-lab.suite"
# The Debian releases a node can run (LAB_SUITE), the Raspberry Pi OS of today
# first: trixie since 2025-10-01, bookworm before it.
SUITES = ("trixie", "bookworm")
# Raspberry Pi OS gives its first user these groups (pi-gen); the stock
# image makes the ones Debian lacks.
STOCK_USER_GROUPS = "adm,dialout,cdrom,audio,users,sudo,video,games,plugdev,input,gpio,spi,i2c,netdev,render"


class LabError(RuntimeError):
    """A lab step failed; the message says which and what to do."""


@dataclass(frozen=True)
class Node:
    container: str
    hostname: str
    role: str
    address: str | None = None
    state: str | None = None
    id: str | None = None
    arch: str | None = None
    flavor: str = "fqdn"
    # The SSH user with passwordless sudo, also the default build user.
    user: str = "pi"
    # The Debian release (LAB_SUITE).
    suite: str = SUITES[0]

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{DOMAIN}"

    @property
    def name(self) -> str:
        """The node's name as the inventory gives it and the other nodes
        resolve it: the FQDN, or on stock nodes the short hostname."""
        return self.hostname if self.flavor == "stock" else self.fqdn


def _docker(*args: str, check: bool = True, capture: bool = True, input: str | None = None) -> str:
    proc = subprocess.run(
        ["docker", *args],
        check=False,
        text=True,
        input=input,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
    )
    if check and proc.returncode != 0:
        raise LabError(f"docker {' '.join(args[:3])} failed: {(proc.stderr or '').strip()}")
    return (proc.stdout or "").strip()


def _say(message: str) -> None:
    print(f"lab: {message}", flush=True)


# --- image ---------------------------------------------------------------------


def _digest(paths: list[Path]) -> str:
    sha = hashlib.sha256()
    for path in sorted(paths):
        sha.update(path.name.encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()[:12]


def base_packages() -> list[str]:
    lines = (IMAGE_DIR / "base-packages.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


# Cached: inventories/lab.py asks once per node on every pyinfra run, and each
# answer would otherwise be a dpkg process.
@functools.cache
def native_arch() -> str:
    """This machine's Debian architecture (what its containers run natively)."""
    if shutil.which("dpkg"):
        out = subprocess.run(["dpkg", "--print-architecture"], text=True, capture_output=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "armhf", "armv6l": "armhf"}.get(
        machine, machine
    )


def _checked_arch(arch: str, setting: str) -> str:
    if arch not in QEMU_HANDLERS:
        raise LabError(
            f"{setting} names the architecture {arch!r}; the lab runs {', '.join(QEMU_HANDLERS)}. "
            f"Set {setting} to one of those (Raspberry Pi OS is arm64 or armhf)."
        )
    return arch


def lab_arch() -> str:
    """LAB_ARCH: the builder's architecture, and every worker's unless LAB_WORKER_ARCHS says otherwise."""
    value = os.environ.get("LAB_ARCH", "").strip()
    return _checked_arch(value, "LAB_ARCH") if value else native_arch()


def lab_worker_archs() -> list[str]:
    """LAB_WORKER_ARCHS: one architecture per worker, in order (worker1 first)."""
    value = os.environ.get("LAB_WORKER_ARCHS", "").strip()
    return [_checked_arch(a.strip(), "LAB_WORKER_ARCHS") for a in value.split(",") if a.strip()] if value else []


def is_emulated(arch: str) -> bool:
    return arch != native_arch()


def lab_flavor() -> str:
    """LAB_FLAVOR: fqdn (default) or stock."""
    value = os.environ.get("LAB_FLAVOR", "").strip() or "fqdn"
    if value not in FLAVORS:
        raise LabError(
            f"LAB_FLAVOR names the flavor {value!r}; the lab has {' and '.join(FLAVORS)}. Set LAB_FLAVOR=stock for nodes "
            "like stock Raspberry Pi OS Lite (short hostnames, no pi user), or unset it for the usual FQDN lab."
        )
    return value


def _checked_suite(suite: str, setting: str) -> str:
    if suite not in SUITES:
        raise LabError(
            f"{setting} names the release {suite!r}; the lab runs {' and '.join(SUITES)}. Set {setting} to one of "
            "those (trixie is the base of today's Raspberry Pi OS), or unset it for trixie."
        )
    return suite


def lab_suite() -> str:
    """LAB_SUITE: the builder's release, and every worker's unless LAB_WORKER_SUITES says otherwise."""
    value = os.environ.get("LAB_SUITE", "").strip()
    return _checked_suite(value, "LAB_SUITE") if value else SUITES[0]


def lab_worker_suites() -> list[str]:
    """LAB_WORKER_SUITES: one release per worker, in order (worker1 first)."""
    value = os.environ.get("LAB_WORKER_SUITES", "").strip()
    return [_checked_suite(v.strip(), "LAB_WORKER_SUITES") for v in value.split(",") if v.strip()] if value else []


def lab_user(flavor: str | None = None) -> str:
    """LAB_USER: the SSH and build user of stock nodes (default ada); the fqdn
    flavor's image has `pi` built in."""
    flavor = flavor or lab_flavor()
    value = os.environ.get("LAB_USER", "").strip()
    if flavor != "stock":
        if value and value != DEFAULT_USER[flavor]:
            raise LabError(
                f"LAB_USER={value} applies to LAB_FLAVOR=stock only; the {flavor} lab's user is "
                f"{DEFAULT_USER[flavor]}. Set LAB_FLAVOR=stock as well, or unset LAB_USER."
            )
        return DEFAULT_USER[flavor]
    value = value or DEFAULT_USER[flavor]
    if value == "root" or not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", value):
        raise LabError(
            f"LAB_USER={value!r} cannot be the nodes' first user: it must be a Debian user name (lower-case "
            "letters, digits, _ and -, starting with a letter or _, at most 32) and not root. Set e.g. LAB_USER=ada."
        )
    return value


def base_image_tag(arch: str | None = None, suite: str | None = None) -> str:
    arch = arch or native_arch()
    suite = suite or lab_suite()
    digest = _digest([IMAGE_DIR / "base-packages.txt"])
    return f"{IMAGE_NAME}-base:{digest}-{suite}" + (f"-{arch}" if is_emulated(arch) else "")


def _recipe_files(arch: str, flavor: str = "fqdn") -> list[Path]:
    files = [p for p in IMAGE_DIR.iterdir() if p.is_file()]
    if is_emulated(arch):
        files += [p for p in EMULATED_DIR.iterdir() if p.is_file()]
    if flavor == "stock":
        files += [p for p in STOCK_DIR.iterdir() if p.is_file()]
    return files


def image_tag(arch: str | None = None, flavor: str = "fqdn", suite: str | None = None) -> str:
    arch = arch or native_arch()
    suite = suite or lab_suite()
    digest = _digest(_recipe_files(arch, flavor))
    return (
        f"{IMAGE_NAME}:{digest}-{suite}" + (f"-{arch}" if is_emulated(arch) else "")
        + ("" if flavor == "fqdn" else f"-{flavor}")
    )


def _image_exists(tag: str) -> bool:
    return subprocess.run(
        ["docker", "image", "inspect", tag], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ).returncode == 0


# The qemu-user that runs the emulated nodes. Debian 13's systemd (257) starts
# every unit through systemd-executor with clone3() and sets up a unit's
# mount namespace (PrivateTmp=, ProtectSystem=, the distccd override's
# TemporaryFileSystem=) with a check statx() answers: under Debian 12's
# qemu-user 7.2 no unit starts ("Failed to spawn executor: Invalid
# argument"), under Debian 13's 10.0 every sandboxed unit fails with
# 226/NAMESPACE; trixie-backports' qemu-user (11.1 when this was written)
# runs both releases' nodes. The lab fetches it with apt inside its own
# native trixie image and registers it under handler names of its own
# (LAB_QEMU_HANDLERS), which take precedence over Debian's qemu-* handlers
# without touching them, until the machine reboots.
QEMU_DIR = STATE_DIR / "qemu"
QEMU_SUITE = "trixie-backports"
LAB_QEMU_HANDLERS = {arch: f"distcc-lab-{binary}" for arch, binary in QEMU_HANDLERS.items()}
# The ELF headers each handler matches (as Debian's qemu-user-binfmt registers them).
QEMU_MAGIC = {
    "arm64": ("7f454c460201010000000000000000000200b700", "ffffffffffffff00fffffffffffffffffeffffff"),
    "armhf": ("7f454c4601010100000000000000000002002800", "ffffffffffffff00fffffffffffffffffeffffff"),
    "amd64": ("7f454c4602010100000000000000000002003e00", "fffffffffffefe00fffffffffffffffffeffffff"),
}
# P: argv[0] as the program gave it; O: the binary handed over open; C:
# setuid programs (sudo) get their owner's uid; F: the interpreter is opened
# now, so it is found inside containers.
QEMU_FLAGS = "POCF"


def lab_qemu(arch: str) -> Path:
    """The lab's qemu-user binary for an emulated architecture, fetched once
    (QEMU_SUITE's qemu-user, unpacked from its .deb in the lab's native
    trixie image; no package is installed on this machine)."""
    binary = QEMU_DIR / QEMU_HANDLERS[arch]
    if binary.exists():
        return binary
    build_base_image(native_arch(), "trixie")
    QEMU_DIR.mkdir(parents=True, exist_ok=True)
    _say(f"fetching qemu-user from Debian {QEMU_SUITE} for the emulated nodes (once)")
    script = (
        f"set -e; echo 'deb {DEBIAN_MIRROR} {QEMU_SUITE} main' > /etc/apt/sources.list.d/lab-qemu.list;"
        " apt-get update -qq >/dev/null; cd /tmp; apt-get download -qq -t " + QEMU_SUITE + " qemu-user 2>/dev/null;"
        " dpkg-deb -x qemu-user_*.deb x; dpkg-deb -f qemu-user_*.deb Version > /out/VERSION;"
        " for b in " + " ".join(sorted(set(QEMU_HANDLERS.values()))) + "; do cp x/usr/bin/$b /out/$b.new; done"
    )
    proc = subprocess.run(
        ["docker", "run", "--rm", "-v", f"{QEMU_DIR}:/out", base_image_tag(native_arch(), "trixie"), "sh", "-c", script],
        text=True, capture_output=True,
    )
    if proc.returncode != 0:
        raise LabError(f"fetching qemu-user from Debian {QEMU_SUITE} failed: {proc.stderr.strip()[-1500:]}")
    for name in set(QEMU_HANDLERS.values()):
        (QEMU_DIR / f"{name}.new").rename(QEMU_DIR / name)
    _say(f"qemu-user {(QEMU_DIR / 'VERSION').read_text().strip()} in {QEMU_DIR}")
    return binary


def _binfmt_entry(name: str) -> dict[str, str]:
    try:
        lines = (BINFMT_DIR / name).read_text().splitlines()
    except OSError:
        return {}
    entry = {"state": lines[0] if lines else ""}
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        entry[key.rstrip(":")] = value
    return entry


def register_lab_qemu(arch: str, interpreter: Path) -> None:
    """(Re)register the lab's handler for arch, ahead of any other."""
    name = LAB_QEMU_HANDLERS[arch]
    if os.geteuid() != 0:
        raise LabError(
            f"{arch} nodes run under the lab's qemu-user ({interpreter}), which must be registered with the "
            f"kernel's binfmt_misc as {name}; that takes root. Run LAB_ARCH={arch} make lab-up as root once "
            "(the registration lasts until the machine reboots), and run again."
        )
    if not (BINFMT_DIR / "register").exists():
        raise LabError(
            f"binfmt_misc is not mounted at {BINFMT_DIR}, so {arch} nodes cannot run. Run LAB_ARCH={arch} "
            "lab/ensure_engine.sh as root (it mounts it), and run again."
        )
    if (BINFMT_DIR / name).exists():
        (BINFMT_DIR / name).write_text("-1\n")
    magic, mask = (("\\x" + "\\x".join(h[i:i + 2] for i in range(0, len(h), 2))) for h in QEMU_MAGIC[arch])
    (BINFMT_DIR / "register").write_text(f":{name}:M:0:{magic}:{mask}:{interpreter}:{QEMU_FLAGS}\n")


def ensure_emulation(arch: str) -> None:
    """An emulated architecture runs under the lab's qemu-user (lab_qemu),
    registered with binfmt_misc under the lab's own handler name."""
    if not is_emulated(arch):
        return
    interpreter = lab_qemu(arch)
    entry = _binfmt_entry(LAB_QEMU_HANDLERS[arch])
    if (
        entry.get("state") != "enabled" or entry.get("interpreter") != str(interpreter)
        or not set(QEMU_FLAGS) <= set(entry.get("flags", ""))
    ):
        _say(f"registering {interpreter} as the binfmt handler {LAB_QEMU_HANDLERS[arch]} (flags {QEMU_FLAGS})")
        register_lab_qemu(arch, interpreter)


def emulation_in_use(image: str, arch: str) -> str:
    """Which interpreter the kernel really runs for this image's binaries
    (another handler registered later for the same ELF header comes first);
    registers the lab's again when it is not the lab's."""
    probe = ["docker", "run", "--rm", "--entrypoint", "/bin/sh", image, "-c", "sleep 2 & readlink /proc/$!/exe"]
    found = subprocess.run(probe, text=True, capture_output=True).stdout.strip()
    interpreter = str(lab_qemu(arch))
    if found != interpreter:
        _say(f"{arch} binaries ran under {found or 'an unknown interpreter'}, not the lab's qemu: registering it again")
        register_lab_qemu(arch, Path(interpreter))
        found = subprocess.run(probe, text=True, capture_output=True).stdout.strip()
        if found != interpreter:
            raise LabError(
                f"{arch} binaries still run under {found or 'an unknown interpreter'}, not the lab's qemu-user "
                f"{interpreter}. Look for another binfmt handler for them in {BINFMT_DIR} and disable it "
                f"(echo 0 > {BINFMT_DIR}/NAME), then run again."
            )
    return found


def build_base_image(arch: str | None = None, suite: str | None = None) -> None:
    arch = arch or native_arch()
    suite = suite or lab_suite()
    tag = base_image_tag(arch, suite)
    if _image_exists(tag):
        return
    if shutil.which("debootstrap") is None:
        raise LabError(
            f"debootstrap is not installed; it builds the lab's Debian {suite} base image. "
            "Install it (Debian: apt-get install debootstrap) and run again."
        )
    ensure_emulation(arch)
    STATE_DIR.mkdir(exist_ok=True)
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=STATE_DIR))
    _say(f"debootstrapping Debian {suite} ({arch}) into {rootfs} (a few minutes, once per recipe)")
    command = ["debootstrap", "--variant=minbase", "--include=" + ",".join(base_packages())]
    import_changes = ["-c", 'CMD ["/lib/systemd/systemd"]', "-c", f"LABEL {SUITE_LABEL}={suite}"]
    if is_emulated(arch):
        # Both debootstrap stages run here, the second through qemu-user. This
        # Docker labels an imported image with its own architecture whatever
        # it holds; the label says what it really is.
        command.append(f"--arch={arch}")
        import_changes += ["-c", f"LABEL {ARCH_LABEL}={arch}"]
    try:
        started = time.monotonic()
        subprocess.run(
            [*command, suite, str(rootfs), DEBIAN_MIRROR],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        _say(f"debootstrap ({suite}, {arch}) took {time.monotonic() - started:.0f}s; importing the root filesystem as {tag}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import", *import_changes, "-", tag],
            stdin=tar.stdout,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if tar.wait() != 0:
            raise LabError("tar of the debootstrapped root filesystem failed")
    except subprocess.CalledProcessError as exc:
        raise LabError(f"building the base image failed: {exc}") from exc
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def build_image(arch: str | None = None, flavor: str = "fqdn", suite: str | None = None) -> str:
    arch = arch or native_arch()
    suite = suite or lab_suite()
    tag = image_tag(arch, flavor, suite)
    if _image_exists(tag):
        return tag
    build_base_image(arch, suite)
    ensure_emulation(arch)
    _say(f"building {tag}")
    started = time.monotonic()
    dockerfile = (IMAGE_DIR / "Dockerfile").read_text()
    if is_emulated(arch):
        # One recipe: the native one, then what emulated nodes need on top.
        dockerfile += "\n" + (EMULATED_DIR / "Dockerfile").read_text()
    if flavor == "stock":
        dockerfile += "\n" + (STOCK_DIR / "Dockerfile").read_text()
    proc = subprocess.run(
        [
            "docker", "build", "-q", "--build-arg", f"BASE={base_image_tag(arch, suite)}",
            *(["--build-arg", f"LAB_ARCH={arch}"] if is_emulated(arch) else []),
            "-t", tag, "-f", "-", str(IMAGE_DIR),
        ],
        text=True,
        input=dockerfile,
        capture_output=True,
    )
    if proc.returncode != 0:
        raise LabError(f"docker build of the lab image failed:\n{proc.stderr[-2000:]}")
    _say(f"built {tag} in {time.monotonic() - started:.0f}s")
    return tag


# --- nodes ---------------------------------------------------------------------


def wanted_nodes(
    workers: int, arch: str | None = None, worker_archs: list[str] | None = None, flavor: str | None = None,
    suite: str | None = None, worker_suites: list[str] | None = None,
) -> list[Node]:
    """The builder and N workers; arch (default LAB_ARCH) is the builder's and
    every worker's, worker_archs (default LAB_WORKER_ARCHS) the first workers';
    suite and worker_suites (LAB_SUITE, LAB_WORKER_SUITES) the same for the
    Debian release; flavor (default LAB_FLAVOR) and its user (LAB_USER) every node's."""
    arch = arch or lab_arch()
    suite = suite or lab_suite()
    flavor = flavor or lab_flavor()
    user = lab_user(flavor)
    worker_archs = lab_worker_archs() if worker_archs is None else worker_archs
    worker_suites = lab_worker_suites() if worker_suites is None else worker_suites
    for setting, listed in (("LAB_WORKER_ARCHS", worker_archs), ("LAB_WORKER_SUITES", worker_suites)):
        if len(listed) > workers:
            raise LabError(
                f"{setting} names {len(listed)} workers ({','.join(listed)}) but the lab has {workers} (LAB_WORKERS). "
                f"Give one entry per worker, or set LAB_WORKERS={len(listed)}."
            )
    archs = worker_archs + [arch] * (workers - len(worker_archs))
    suites = worker_suites + [suite] * (workers - len(worker_suites))
    nodes = [Node(f"{PREFIX}-builder", "builder", "builder", arch=arch, flavor=flavor, user=user, suite=suite)]
    nodes += [
        Node(f"{PREFIX}-worker{i}", f"worker{i}", "worker", arch=a, flavor=flavor, user=user, suite=r)
        for i, (a, r) in enumerate(zip(archs, suites, strict=True), start=1)
    ]
    return nodes


def default_workers() -> int:
    """LAB_WORKERS, else one worker per LAB_WORKER_ARCHS (or LAB_WORKER_SUITES) entry, else 2."""
    value = os.environ.get("LAB_WORKERS", "").strip()
    if value:
        try:
            return int(value)
        except ValueError:
            raise LabError(f"LAB_WORKERS={value!r} is not a number; set it to the number of workers, e.g. 2.") from None
    return max(len(lab_worker_archs()), len(lab_worker_suites())) or 2


def known_hosts_file(running: list[Node]) -> Path:
    # One folder per lab prefix: two labs driven from one checkout (e.g. the
    # usual lab and tests/lab_arm's) do not forget each other's keys.
    folder = KNOWN_HOSTS_DIR / f"known_hosts.d-{PREFIX}"
    digest = hashlib.sha256(" ".join(sorted(n.id or "" for n in running)).encode()).hexdigest()[:12]
    path = folder / f"known_hosts-{digest}"
    if not path.exists():
        for old in folder.glob("known_hosts-*"):
            old.unlink(missing_ok=True)
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    return path


def ensure_ssh_key() -> Path:
    if not SSH_KEY.exists():
        SSH_KEY.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "distcc-lab", "-f", str(SSH_KEY)],
            check=True,
        )
    return SSH_KEY


def ensure_network() -> None:
    if subprocess.run(
        ["docker", "network", "inspect", NETWORK], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ).returncode != 0:
        _docker("network", "create", "--subnet", SUBNET, "--label", f"{PREFIX_LABEL}={PREFIX}", NETWORK)


def _container_info(name: str) -> dict | None:
    out = subprocess.run(
        ["docker", "container", "inspect", name], text=True, capture_output=True
    )
    if out.returncode != 0:
        return None
    return json.loads(out.stdout)[0]


def static_address(node: Node) -> str:
    """A fixed address per node (builder .2, workerN .N+2), as a real cluster
    has reserved ones: distccd's --listen and --allow are written with them,
    so a node must come back with its own after a reboot, whatever order the
    nodes boot in."""
    network = ipaddress.IPv4Network(SUBNET)
    if node.role not in ("builder", "worker"):
        # A container that is no part of the cluster (the security tests'
        # outsider): the top of the subnet, away from the nodes.
        return str(network.broadcast_address - 1)
    index = 0 if node.role == "builder" else int(node.hostname.removeprefix("worker"))
    return str(network.network_address + 2 + index)


def _spec(node: Node, image: str) -> str:
    # fqdn nodes keep the spec they always had, so running labs are kept.
    naming = [DOMAIN] if node.flavor == "fqdn" else [node.flavor, node.user]
    return hashlib.sha256(" ".join([image, *naming, static_address(node), *SYSTEMD_RUN_FLAGS]).encode()).hexdigest()[:12]


def remove_if_outdated(node: Node, image: str) -> None:
    """Remove a node made from an older image or recipe (it is made anew).
    Done for every node before any is started: a new node may take an
    address an old one still holds."""
    info = _container_info(node.container)
    if info is not None and info["Config"]["Labels"].get(SPEC_LABEL) != _spec(node, image):
        _say(f"{node.container} was made from an older image or recipe: replacing it")
        _docker("rm", "-f", "-v", node.container)


def start_node(node: Node, image: str) -> None:
    """Create or start one node (remove_if_outdated first)."""
    address = static_address(node)
    spec = _spec(node, image)
    info = _container_info(node.container)
    if info is None:
        if node.flavor == "stock":
            # A short hostname; the network's DNS (Docker's, on the lab
            # network) resolves the short names, as a home router does.
            naming = ["--hostname", node.hostname, "--network-alias", node.hostname]
        else:
            naming = ["--hostname", node.hostname, "--domainname", DOMAIN,
                      "--network-alias", node.hostname, "--network-alias", node.fqdn]
        _docker(
            "run", "-d", "--name", node.container, *naming,
            "--network", NETWORK, "--ip", address,
            "--label", f"{LABEL}={node.role}",
            "--label", f"{FLAVOR_LABEL}={node.flavor}",
            "--label", f"{USER_LABEL}={node.user}",
            "--label", f"{SPEC_LABEL}={spec}",
            "--label", f"{PREFIX_LABEL}={PREFIX}",
            "--label", f"{ARCH_LABEL}={node.arch or native_arch()}",
            "--label", f"{SUITE_LABEL}={node.suite}",
            *SYSTEMD_RUN_FLAGS,
            image,
        )
    elif not info["State"]["Running"]:
        _docker("start", node.container)


def _exec(container: str, script: str, check: bool = True) -> str:
    return _docker("exec", "-i", container, "sh", "-c", script, check=check)


def _boot_slowdown(node: Node) -> int:
    # Under qemu-user every process start costs several times more, as on a CM3+.
    return 4 if is_emulated(node.arch or native_arch()) else 1


def provision_node(node: Node, public_key: str) -> None:
    """Wait for systemd, then give the node's user (made first on stock nodes)
    the lab key, and the role's k3s stand-in."""
    deadline = time.monotonic() + 120 * _boot_slowdown(node)
    state = ""
    while time.monotonic() < deadline:
        state = _exec(node.container, "systemctl is-system-running 2>/dev/null || true", check=False)
        # "degraded" is tolerated (a unit failed), but the failed units are named.
        if state in ("running", "degraded"):
            break
        time.sleep(0.5)
    else:
        raise LabError(f"{node.container}: systemd did not finish booting (state {state!r})")
    if state == "degraded":
        failed = _exec(node.container, "systemctl --failed --plain --no-legend | awk '{print $1}'", check=False)
        _say(f"{node.container}: systemd is degraded, failed units: {' '.join(failed.split()) or 'none listed'}")
    unit = K3S_UNIT_FOR_ROLE.get(node.role)
    user, home = node.user, f"/home/{node.user}"
    script = "set -e\n"
    if node.flavor == "stock":
        # The first user, as Raspberry Pi OS makes it on first boot (pi-gen's
        # adduser and groups, its sudoers file under its old name), with the
        # ~/.local/bin that any `pip install --user` leaves: Debian's
        # ~/.profile then puts it first on PATH at every login.
        script += (
            f"if ! id -u {user} >/dev/null 2>&1; then\n"
            f"  useradd --create-home --shell /bin/bash --groups {STOCK_USER_GROUPS} {user}\n"
            f"  echo '{user} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/010_pi-nopasswd\n"
            "  chmod 0440 /etc/sudoers.d/010_pi-nopasswd\n"
            f"  su {user} -c 'mkdir -p {home}/.local/bin'\n"
            "fi\n"
        )
    script += (
        f"install -d -m 700 -o {user} -g {user} {home}/.ssh\n"
        # Added, not replaced: several checkouts (each with its own key in
        # .lab/ssh) may drive the same lab.
        f"key=$(cat); touch {home}/.ssh/authorized_keys\n"
        f'grep -qxF "$key" {home}/.ssh/authorized_keys || printf "%s\\n" "$key" >> {home}/.ssh/authorized_keys\n'
        f"chown {user}:{user} {home}/.ssh/authorized_keys && chmod 600 {home}/.ssh/authorized_keys\n"
    )
    if unit:
        # Installed once, like k3s's install.sh would; later runs leave the
        # unit's state to the deploys (k3s mode or build mode).
        script += (
            f"if [ ! -e /etc/systemd/system/{unit}.service ]; then\n"
            f"  install -m 644 /usr/local/share/lab/{unit}.service /etc/systemd/system/{unit}.service\n"
            f"  systemctl daemon-reload && systemctl enable --now {unit}.service >/dev/null 2>&1\n"
            "fi\n"
        )
    _docker("exec", "-i", node.container, "sh", "-c", script, input=public_key)
    deadline = time.monotonic() + 30 * _boot_slowdown(node)
    while _exec(node.container, "systemctl is-active ssh.service || true", check=False) != "active":
        if time.monotonic() > deadline:
            raise LabError(f"{node.container}: sshd did not start")
        time.sleep(0.3)


def register_k3s_nodes(server: Node, cluster: list[Node]) -> None:
    """The nodes the server's `k3s kubectl get nodes` lists (lab/image/kubectl):
    each node's hostname, which k3s takes as its node name, and address. A
    real server learns them as the nodes join."""
    lines = "".join(f"{n.hostname} {static_address(n)}\n" for n in cluster if n.role in K3S_UNIT_FOR_ROLE)
    _docker("exec", "-i", server.container, "sh", "-c", "cat > /etc/rancher/k3s/lab-nodes", input=lines)


def lab_containers() -> list[str]:
    out = _docker("ps", "-a", "--filter", f"label={PREFIX_LABEL}={PREFIX}", "--format", "{{.Names}}")
    return [line for line in out.splitlines() if line]


# --- the lab's containers from the Docker Engine API ------------------------------
# inventories/lab.py reads nodes() at the start of every pyinfra run: two docker
# CLI processes cost about 0.1 s there, the same answers over the engine's
# socket a few milliseconds.

DEFAULT_ENGINE_SOCKET = "/var/run/docker.sock"
ENGINE_API_TIMEOUT = 30


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a UNIX socket, as the docker CLI talks to its engine."""

    def __init__(self, socket_path: str, timeout: float = ENGINE_API_TIMEOUT) -> None:
        # "localhost" only fills the Host header; the engine does not read it.
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def engine_socket() -> str | None:
    """The UNIX socket of the engine the docker CLI would use, or None when
    the CLI would go elsewhere (DOCKER_HOST tcp:// or ssh://, a docker context
    other than the default), so that the API is only asked where the CLI would
    ask. The CLI's order: DOCKER_HOST, DOCKER_CONTEXT, config.json's
    currentContext."""
    host = os.environ.get("DOCKER_HOST", "").strip()
    if host:
        return host.removeprefix("unix://") if host.startswith("unix://") else None
    context = os.environ.get("DOCKER_CONTEXT", "").strip()
    if not context:
        config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
        try:
            context = str(json.loads(config.read_text()).get("currentContext") or "")
        except (OSError, ValueError, AttributeError):
            context = ""
    return DEFAULT_ENGINE_SOCKET if context in ("", "default") else None


def _engine_get(connection: http.client.HTTPConnection, path: str):
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise LabError(f"Docker Engine API GET {path}: HTTP {response.status} {body[:200]!r}")
    return json.loads(body)


def inspections_from_engine_api(socket_path: str) -> list[dict]:
    """What `docker container inspect` says of each lab container, in the
    order `docker ps` lists them (newest first), read over the engine's
    socket with one connection. Raises OSError, http.client.HTTPException,
    ValueError or LabError when the engine cannot answer."""
    # The filter exactly as `docker ps --filter label=K=V` sends it.
    filters = urllib.parse.quote(json.dumps({"label": {f"{PREFIX_LABEL}={PREFIX}": True}}))
    connection = UnixHTTPConnection(socket_path)
    try:
        listed = _engine_get(connection, f"/containers/json?all=1&filters={filters}")
        return [_engine_get(connection, f"/containers/{urllib.parse.quote(c['Id'])}/json") for c in listed]
    finally:
        connection.close()


def inspections_from_cli() -> list[dict]:
    """The same as inspections_from_engine_api(), through the docker CLI."""
    names = lab_containers()
    return json.loads(_docker("container", "inspect", *names)) if names else []


def nodes_from_inspections(infos: list[dict]) -> list[Node]:
    """Nodes from `docker container inspect` answers, builder first."""
    found = []
    for info in infos:
        nets = info["NetworkSettings"]["Networks"]
        address = nets.get(NETWORK, {}).get("IPAddress") or None
        found.append(
            Node(
                container=info["Name"].lstrip("/"),
                id=info["Id"],
                hostname=info["Config"]["Hostname"],
                role=info["Config"]["Labels"].get(LABEL, "?"),
                address=address,
                state=info["State"]["Status"],
                # Containers made before the label existed run the native image.
                arch=info["Config"]["Labels"].get(ARCH_LABEL) or native_arch(),
                # ... and are of the fqdn flavor, reached as pi.
                flavor=info["Config"]["Labels"].get(FLAVOR_LABEL) or "fqdn",
                user=info["Config"]["Labels"].get(USER_LABEL) or "pi",
                suite=info["Config"]["Labels"].get(SUITE_LABEL) or "bookworm",
            )
        )
    order = {"builder": 0, "worker": 1}
    return sorted(found, key=lambda n: (order.get(n.role, 2), len(n.hostname), n.hostname))


def nodes() -> list[Node]:
    """The lab's nodes as Docker reports them now, builder first: from the
    engine's API, else (no socket, no permission, another endpoint, an error
    answer) from the docker CLI."""
    socket_path = engine_socket()
    if socket_path is not None:
        try:
            return nodes_from_inspections(inspections_from_engine_api(socket_path))
        except (OSError, http.client.HTTPException, ValueError, LabError):
            pass
    return nodes_from_inspections(inspections_from_cli())


INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
# Every container's systemd takes several inotify instances (path units,
# journald, udev-less device watches) from the host's per-user limit, 128 by
# default: past about 20 containers, systemd in the next one never boots.
INOTIFY_NEEDED = 2048


def ensure_inotify_instances() -> None:
    current = int(INOTIFY_INSTANCES.read_text()) if INOTIFY_INSTANCES.exists() else INOTIFY_NEEDED
    if current >= INOTIFY_NEEDED:
        return
    if os.geteuid() != 0:
        raise LabError(
            f"fs.inotify.max_user_instances is {current}; systemd in many lab containers needs "
            f"{INOTIFY_NEEDED}. Run: sudo sysctl -w fs.inotify.max_user_instances={INOTIFY_NEEDED}"
        )
    _say(f"raising fs.inotify.max_user_instances from {current} to {INOTIFY_NEEDED} for the containers' systemd")
    INOTIFY_INSTANCES.write_text(f"{INOTIFY_NEEDED}\n")


def up(
    workers: int | None = None, arch: str | None = None, worker_archs: list[str] | None = None, flavor: str | None = None
) -> list[Node]:
    """Start the lab: workers (default LAB_WORKERS), the builder's and default
    architecture (default LAB_ARCH), the first workers' (default LAB_WORKER_ARCHS),
    the nodes' flavor (default LAB_FLAVOR)."""
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise LabError(f"LAB_WORKERS={workers}: the lab needs at least one worker.")
    wanted = wanted_nodes(workers, arch, worker_archs, flavor)
    ensure_inotify_instances()
    images = {}
    for kind in dict.fromkeys((n.arch, n.suite) for n in wanted):
        images[kind] = build_image(kind[0], wanted[0].flavor, kind[1])
    ensure_network()
    key = ensure_ssh_key()
    wanted_names = {n.container for n in wanted}
    for name in lab_containers():
        if name not in wanted_names:
            _say(f"removing {name} (not part of a lab with {workers} workers)")
            _docker("rm", "-f", "-v", name)
    for node in wanted:
        remove_if_outdated(node, images[node.arch, node.suite])
    for node in wanted:
        start_node(node, images[node.arch, node.suite])
    for (node_arch, _suite), image in images.items():
        if is_emulated(node_arch):
            emulation_in_use(image, node_arch)
    public_key = key.with_suffix(".pub").read_text()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: provision_node(n, public_key), wanted))
    for node in wanted:
        if K3S_UNIT_FOR_ROLE.get(node.role) == "k3s":
            register_k3s_nodes(node, wanted)
    return nodes()


def down() -> None:
    names = lab_containers()
    if names:
        _docker("rm", "-f", "-v", *names)
    if subprocess.run(
        ["docker", "network", "inspect", NETWORK], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ).returncode == 0:
        _docker("network", "rm", NETWORK)


def status() -> str:
    rows = [("CONTAINER", "NAME", "ROLE", "RELEASE", "ARCH", "SSH USER", "STATE", "ADDRESS", "SYSTEMD")]
    for node in nodes():
        systemd = "-"
        if node.state == "running":
            systemd = _exec(node.container, "systemctl is-system-running 2>/dev/null || true", check=False)
        rows.append((node.container, node.name, node.role, node.suite, node.arch or "?", node.user, node.state or "?",
                     node.address or "-", systemd))
    if len(rows) == 1:
        tag = image_tag(flavor=lab_flavor())
        return f"no lab containers (image {tag} {'present' if _image_exists(tag) else 'not built'})"
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    try:
        if command == "image":
            # Every architecture and release the lab would run (LAB_ARCH,
            # LAB_WORKER_ARCHS, LAB_SUITE, LAB_WORKER_SUITES), in its flavor (LAB_FLAVOR).
            for arch, flavor, suite in dict.fromkeys((n.arch, n.flavor, n.suite) for n in wanted_nodes(default_workers())):
                _say(f"image {build_image(arch, flavor, suite)} ready")
        elif command == "up":
            workers = default_workers()
            started = time.monotonic()
            up(workers)
            _say(f"up with {workers} workers in {time.monotonic() - started:.1f}s")
            print(status())
        elif command == "down":
            down()
            _say("down: no lab container or network left")
        elif command == "status":
            print(status())
        else:
            print("usage: python -m lab {image|up|down|status}", file=sys.stderr)
            return 2
    except LabError as exc:
        print(f"lab: ERROR: {exc}", file=sys.stderr)
        return 1
    return 0
