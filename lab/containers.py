"""The lab's containers: its network, SSH key and known hosts, each node's
fixed address, and each node started and provisioned (systemd booted, the
user's key, the k3s stand-in)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import subprocess
import time
from pathlib import Path

from lab.docker_cli import docker, say
from lab.settings import (
    ARCH_LABEL,
    DOMAIN,
    FLAVOR_LABEL,
    K3S_UNIT_FOR_ROLE,
    KNOWN_HOSTS_DIR,
    LABEL,
    NETWORK,
    PREFIX,
    PREFIX_LABEL,
    SPEC_LABEL,
    SSH_KEY,
    STOCK_USER_GROUPS,
    SUBNET,
    SUITE_LABEL,
    SYSTEMD_RUN_FLAGS,
    USER_LABEL,
    LabError,
    Node,
    is_emulated,
    native_arch,
)


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
        docker("network", "create", "--subnet", SUBNET, "--label", f"{PREFIX_LABEL}={PREFIX}", NETWORK)


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
        say(f"{node.container} was made from an older image or recipe: replacing it")
        docker("rm", "-f", "-v", node.container)


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
        docker(
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
        docker("start", node.container)


def exec_script(container: str, script: str, check: bool = True) -> str:
    return docker("exec", "-i", container, "sh", "-c", script, check=check)


def _boot_slowdown(node: Node) -> int:
    # Under qemu-user every process start costs several times more, as on a CM3+.
    return 4 if is_emulated(node.arch or native_arch()) else 1


def provision_node(node: Node, public_key: str) -> None:
    """Wait for systemd, then give the node's user (made first on stock nodes)
    the lab key, and the role's k3s stand-in."""
    deadline = time.monotonic() + 120 * _boot_slowdown(node)
    state = ""
    while time.monotonic() < deadline:
        state = exec_script(node.container, "systemctl is-system-running 2>/dev/null || true", check=False)
        # "degraded" is tolerated (a unit failed), but the failed units are named.
        if state in ("running", "degraded"):
            break
        time.sleep(0.5)
    else:
        raise LabError(f"{node.container}: systemd did not finish booting (state {state!r})")
    if state == "degraded":
        failed = exec_script(node.container, "systemctl --failed --plain --no-legend | awk '{print $1}'", check=False)
        say(f"{node.container}: systemd is degraded, failed units: {' '.join(failed.split()) or 'none listed'}")
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
    docker("exec", "-i", node.container, "sh", "-c", script, input=public_key)
    deadline = time.monotonic() + 30 * _boot_slowdown(node)
    while exec_script(node.container, "systemctl is-active ssh.service || true", check=False) != "active":
        if time.monotonic() > deadline:
            raise LabError(f"{node.container}: sshd did not start")
        time.sleep(0.3)


def register_k3s_nodes(server: Node, cluster: list[Node]) -> None:
    """The nodes the server's `k3s kubectl get nodes` lists (lab/image/kubectl):
    each node's hostname, which k3s takes as its node name, and address. A
    real server learns them as the nodes join."""
    lines = "".join(f"{n.hostname} {static_address(n)}\n" for n in cluster if n.role in K3S_UNIT_FOR_ROLE)
    docker("exec", "-i", server.container, "sh", "-c", "cat > /etc/rancher/k3s/lab-nodes", input=lines)


def lab_containers() -> list[str]:
    out = docker("ps", "-a", "--filter", f"label={PREFIX_LABEL}={PREFIX}", "--format", "{{.Names}}")
    return [line for line in out.splitlines() if line]


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
    say(f"raising fs.inotify.max_user_instances from {current} to {INOTIFY_NEEDED} for the containers' systemd")
    INOTIFY_INSTANCES.write_text(f"{INOTIFY_NEEDED}\n")
