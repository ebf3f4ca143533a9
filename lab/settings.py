"""The lab's settings and shape: LAB_* from the environment, the Docker
labels and names derived from them, and the nodes a lab of N workers has.

Read at import (LAB_PREFIX, LAB_SUBNET, LAB_DOMAIN, LAB_DEBIAN_MIRROR) or
when asked (LAB_ARCH, LAB_WORKER_ARCHS, LAB_SUITE, LAB_WORKER_SUITES,
LAB_FLAVOR, LAB_USER, LAB_WORKERS); lab/docker_lab.py says what each does.
Standard library only, like the rest of lab/.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import subprocess
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
