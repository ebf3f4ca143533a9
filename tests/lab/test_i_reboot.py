"""Each mode survives a reboot: a node restarted with `docker restart`
(systemd boots again from the container's disk) comes back in the mode it
was in, with no deploy run in between.

- Build mode: k3s does not start (its units are disabled) and no pod runs;
  the builder's tmpfs is mounted again from fstab (empty: its contents do not
  survive); every worker's distccd serves; the builder runs no distccd.
  Validation and the smoke test pass, and a mode switch changes nothing.
- k3s mode: k3s and its pods run again; no distccd listens anywhere; no tmpfs.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

from lab import docker_lab
from tests.lab.harness import deploy, docker_host, sh

TMPFS = "/tmp/kernel-build"
K3S_LEFT = "ps -eo comm= | grep -cE '^(k3s|k3s-server|k3s-agent|containerd-shim|pod-workload|pause)$' || true"


def reboot(nodes: list[docker_lab.Node]) -> list[docker_lab.Node]:
    """Restart every node at once, then wait for systemd and sshd (lab up
    starts nothing new on running containers; it waits and checks keys)."""
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        list(pool.map(lambda n: subprocess.run(["docker", "restart", n.container], check=True, capture_output=True), nodes))
    return docker_lab.up(sum(1 for n in nodes if n.role == "worker"))


def ok(run):
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_build_mode_survives_a_reboot(builder, workers):
    ok(deploy("mode_switch"))
    sh(builder.container, f"echo lost > {TMPFS}/object-of-the-last-build.o")
    after = reboot([builder, *workers])
    assert [(n.container, n.address) for n in after] == [(n.container, n.address) for n in [builder, *workers]]

    b = docker_host(builder)
    mount = b.mount_point(TMPFS)
    assert mount.filesystem == "tmpfs" and "size=262144k" in mount.options
    # On trixie /tmp is itself a tmpfs (Debian 13's tmp.mount), mounted first
    # at boot: the build tmpfs is a mount of its own on top of it, not hidden.
    mounts = sh(builder.container, "findmnt -rn -o TARGET,FSTYPE,SIZE --submounts --target /tmp").splitlines()
    if builder.suite == "trixie":
        assert [m.split()[:2] for m in mounts] == [["/tmp", "tmpfs"], [TMPFS, "tmpfs"]], mounts
    else:
        assert [m.split()[:2] for m in mounts if m.startswith("/tmp")] == [[TMPFS, "tmpfs"]], mounts
    assert not b.file(f"{TMPFS}/object-of-the-last-build.o").exists
    assert not b.service("distcc").is_running and not b.service("k3s").is_running
    for node in [builder, *workers]:
        assert int(sh(node.container, K3S_LEFT)) == 0, node.container
    for worker in workers:
        host = docker_host(worker)
        assert host.service("distcc").is_running and not host.service("k3s-agent").is_running
        assert host.socket(f"tcp://{worker.address}:3632").is_listening

    ok(deploy("cluster_distcc_validate", json_output=False))
    smoke = ok(deploy("cluster_distcc_smoketest", json_output=False))
    assert f"smoke test: {len(workers)} of {len(workers)} workers PASS" in smoke.stderr
    assert ok(deploy("mode_switch")).totals["success"] == 0


def test_k3s_mode_survives_a_reboot(builder, workers):
    ok(deploy("k3s_mode", data={"distcc_discard_tmpfs": True}))
    try:
        reboot([builder, *workers])
        assert not docker_host(builder).mount_point(TMPFS).exists
        assert docker_host(builder).service("k3s").is_running
        for worker in workers:
            host = docker_host(worker)
            assert host.service("k3s-agent").is_running and not host.service("distcc").is_running
            assert not host.socket(f"tcp://{worker.address}:3632").is_listening
        for node in [builder, *workers]:
            assert int(sh(node.container, K3S_LEFT)) >= 3, node.container
        assert ok(deploy("k3s_mode")).totals["success"] == 0
    finally:
        ok(deploy("mode_switch"))
