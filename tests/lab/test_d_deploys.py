"""The deploys one by one on a fresh lab, their idempotency (read from
`pyinfra --json`), the mode switch from a half-configured cluster, and the
round trip to k3s mode and back that never loses build output."""

import pytest

from bench.analysis import parse_pyinfra_log
from tests.lab.harness import deploy, docker_host, pyinfra, recreate_lab, sh, words_of

DEPLOYS = ["distccd_bootstrap", "builder_distccd_guard", "worker_distccd_reset", "mode_switch", "cluster_distcc_validate"]
TMPFS = "/tmp/kernel-build"


@pytest.fixture(scope="module")
def nodes():
    return recreate_lab()


def ok(run):
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_bootstrap_installs_and_enables_but_does_not_start(nodes, builder, workers):
    run = ok(deploy("distccd_bootstrap"))
    assert "distccd bootstrap: skipped, it is for the workers; this host is builder" in words_of(run.stderr)
    assert not run.changed_on(builder.fqdn)
    for worker in workers:
        host = docker_host(worker)
        assert host.package("distcc").is_installed
        assert host.file("/etc/systemd/system/distcc.service.d/override.conf").contains("^Type=simple$")
        assert host.file("/var/log/distccd").user == "distccd"
        assert host.file("/usr/lib/distcc/gcc").is_symlink
        assert host.service("distcc").is_enabled
        assert host.run("systemctl is-active distcc").stdout.strip() == "inactive"
        assert not host.process.filter(comm="distccd")
    assert not docker_host(builder).package("distcc").is_installed


def test_guard_makes_the_builder_a_client_only(builder, workers):
    run = ok(deploy("builder_distccd_guard"))
    assert "builder distccd guard: skipped, it is for the builder; this host is worker" in words_of(run.stderr)
    host = docker_host(builder)
    assert host.package("distcc").is_installed
    assert not host.service("distcc").is_running and not host.service("distcc").is_enabled
    mount = host.mount_point(TMPFS)
    assert mount.filesystem == "tmpfs" and "noexec" not in mount.options
    assert host.file("/etc/fstab").contains(f"^tmpfs {TMPFS} tmpfs size=256M")
    hosts = host.file("/home/pi/.distcc/hosts")
    assert hosts.user == "pi"
    for worker in workers:
        assert hosts.contains(f"^{worker.fqdn}:3632/[0-9]")
    path = host.run("sudo -u pi bash -lc 'echo $PATH'").stdout.strip()
    assert path.startswith("/usr/lib/distcc:")


def test_reset_starts_distccd_listening_then_validation_passes(workers):
    ok(deploy("worker_distccd_reset"))
    for worker in workers:
        host = docker_host(worker)
        assert not host.service("k3s-agent").is_running
        assert host.socket(f"tcp://{worker.address}:3632").is_listening
    check = deploy("cluster_distcc_validate", json_output=False)
    assert check.returncode == 0, check.stderr[-3000:]


@pytest.mark.parametrize("name", DEPLOYS)
def test_second_run_changes_nothing(name):
    ok(deploy(name))
    again = ok(deploy(name))
    assert again.totals["success"] == 0 and again.totals["error"] == 0, again.changed_operations()


def test_a_no_change_mode_switch_costs_at_most_six_remote_commands_per_host(builder, workers):
    """Issue 14's budget, counted from pyinfra's own echo of every SSH exec
    (bench/analysis.py): the planned facts come in one bundle per phase, a
    worker's CPUs and memory once per run."""
    ok(deploy("mode_switch"))
    for args in (("deploys/mode_switch.py", "-vv"), ("--dry", "deploys/mode_switch.py", "-vv")):
        run = pyinfra(*args, json_output=False)
        assert run.returncode == 0, run.stderr[-3000:]
        counted = parse_pyinfra_log(run.output)
        hosts = [builder.fqdn, *(w.fqdn for w in workers)]
        assert all(counted["commands"].get(h, 0) >= 2 for h in hosts), counted["commands"]
        assert all(counted["commands"][h] <= 6 for h in hosts), (args, counted["commands"], counted["facts"])


def test_mode_switch_heals_a_half_configured_cluster(builder, workers):
    first, *_ = workers
    sh(first.container, "systemctl stop distcc")
    sh(builder.container, f"umount {TMPFS}")
    last = workers[-1]
    sh(
        last.container,
        "sed -i 's/--jobs [0-9]*/--jobs 7/' /etc/systemd/system/distcc.service.d/override.conf && systemctl daemon-reload",
    )
    run = ok(deploy("mode_switch"))
    assert "mode switch | builder client only | Build tree tmpfs mounted" in run.changed_on(builder.fqdn)
    assert "mode switch | worker serving | distccd active and listening" in run.changed_on(first.fqdn)
    assert "mode switch | distcc installed | distccd override (foreground, hardened)" in run.changed_on(last.fqdn)
    for worker in workers:
        assert "--jobs 7" not in docker_host(worker).file("/etc/systemd/system/distcc.service.d/override.conf").content_string
    check = deploy("cluster_distcc_validate", json_output=False)
    assert check.returncode == 0, check.stderr[-3000:]


def test_force_restart_flag_restarts_a_healthy_distccd(workers):
    pids = {w.container: sh(w.container, "systemctl show distcc -p MainPID --value").strip() for w in workers}
    run = ok(deploy("worker_distccd_reset", data={"distcc_force_restart": True}))
    assert run.totals["success"] > 0
    for worker in workers:
        assert sh(worker.container, "systemctl show distcc -p MainPID --value").strip() != pids[worker.container]
        assert docker_host(worker).socket(f"tcp://{worker.address}:3632").is_listening


def test_round_trip_keeps_build_output(builder, workers):
    back = ok(deploy("k3s_mode"))
    assert back.totals["success"] > 0
    b = docker_host(builder)
    assert b.service("k3s").is_running and not b.mount_point(TMPFS).exists
    assert not b.file("/etc/fstab").contains(TMPFS)
    for worker in workers:
        host = docker_host(worker)
        assert host.service("k3s-agent").is_running and not host.service("distcc").is_running
        assert not host.service("distcc").is_enabled
    assert ok(deploy("k3s_mode")).totals["success"] == 0

    ok(deploy("mode_switch"))
    sh(builder.container, f"echo precious > {TMPFS}/vmlinux.o")
    kept = ok(deploy("k3s_mode", json_output=False))
    assert f"keeping the tmpfs at {TMPFS}: it holds 1 entries" in words_of(kept.stderr)
    assert b.mount_point(TMPFS).filesystem == "tmpfs"
    assert b.file(f"{TMPFS}/vmlinux.o").content_string == "precious\n"
    assert b.service("k3s").is_running

    ok(deploy("mode_switch"))
    assert b.file(f"{TMPFS}/vmlinux.o").content_string == "precious\n"
    check = deploy("cluster_distcc_validate", json_output=False)
    assert check.returncode == 0, check.stderr[-3000:]

    ok(deploy("k3s_mode", data={"distcc_discard_tmpfs": True}))
    assert not b.mount_point(TMPFS).exists
    ok(deploy("mode_switch"))
