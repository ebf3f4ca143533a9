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

Only the Python standard library and the docker CLI are used, so the lab
runs before the virtualenv exists and is imported by `inventories/lab.py`.
nodes(), which that inventory calls on every pyinfra run, asks the Docker
Engine API over its UNIX socket instead when it can (same nodes either way).

This module is the lab's public face: up(), down(), status() and the
`python -m lab` commands, and the names tests and the bench use
(docker_lab.up, docker_lab.nodes, docker_lab.Node, ...). The parts live by
subject: lab/settings.py (LAB_* and the nodes wanted), lab/images.py (image
tags and builds, qemu-user), lab/containers.py (network, SSH, starting and
provisioning nodes), lab/engine_api.py (the nodes Docker reports),
lab/docker_cli.py (the docker CLI).
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from lab.containers import (
    ensure_inotify_instances,
    ensure_network,
    ensure_ssh_key,
    exec_script,
    lab_containers,
    provision_node,
    register_k3s_nodes,
    remove_if_outdated,
    start_node,
    static_address,
)
from lab.docker_cli import docker, say
from lab.engine_api import nodes
from lab.images import base_image_tag, build_image, emulation_in_use, image_exists, image_tag
from lab.settings import (
    DOMAIN,
    K3S_UNIT_FOR_ROLE,
    NETWORK,
    PREFIX,
    SSH_KEY,
    SUBNET,
    LabError,
    Node,
    default_workers,
    is_emulated,
    lab_flavor,
    lab_suite,
    native_arch,
    wanted_nodes,
)

# What importers use as docker_lab.NAME, defined where its subject lives.
__all__ = [
    "DOMAIN", "K3S_UNIT_FOR_ROLE", "PREFIX", "SSH_KEY", "SUBNET", "LabError", "Node",
    "base_image_tag", "build_image", "default_workers", "down", "ensure_ssh_key", "image_tag", "lab_containers",
    "lab_suite", "main", "native_arch", "nodes", "provision_node", "start_node", "static_address", "status", "up",
    "wanted_nodes",
]


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
            say(f"removing {name} (not part of a lab with {workers} workers)")
            docker("rm", "-f", "-v", name)
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
        docker("rm", "-f", "-v", *names)
    if subprocess.run(
        ["docker", "network", "inspect", NETWORK], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ).returncode == 0:
        docker("network", "rm", NETWORK)


def status() -> str:
    rows = [("CONTAINER", "NAME", "ROLE", "RELEASE", "ARCH", "SSH USER", "STATE", "ADDRESS", "SYSTEMD")]
    for node in nodes():
        systemd = "-"
        if node.state == "running":
            systemd = exec_script(node.container, "systemctl is-system-running 2>/dev/null || true", check=False)
        rows.append((node.container, node.name, node.role, node.suite, node.arch or "?", node.user, node.state or "?",
                     node.address or "-", systemd))
    if len(rows) == 1:
        tag = image_tag(flavor=lab_flavor())
        return f"no lab containers (image {tag} {'present' if image_exists(tag) else 'not built'})"
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    try:
        if command == "image":
            # Every architecture and release the lab would run (LAB_ARCH,
            # LAB_WORKER_ARCHS, LAB_SUITE, LAB_WORKER_SUITES), in its flavor (LAB_FLAVOR).
            for arch, flavor, suite in dict.fromkeys((n.arch, n.flavor, n.suite) for n in wanted_nodes(default_workers())):
                say(f"image {build_image(arch, flavor, suite)} ready")
        elif command == "up":
            workers = default_workers()
            started = time.monotonic()
            up(workers)
            say(f"up with {workers} workers in {time.monotonic() - started:.1f}s")
            print(status())
        elif command == "down":
            down()
            say("down: no lab container or network left")
        elif command == "status":
            print(status())
        else:
            print("usage: python -m lab {image|up|down|status}", file=sys.stderr)
            return 2
    except LabError as exc:
        print(f"lab: ERROR: {exc}", file=sys.stderr)
        return 1
    return 0
