"""The playbooks composed from small deploys, and refusals that come from
what the worker itself resolves: each checked on the real lab.

- A worker whose /etc/hosts maps the builder's name to a loopback address is
  refused while the deploy file loads (derived --listen/--allow would be
  loopback), before any host changes, with the cause and the fix.
- Each playbook changes only its own role, and the reset, run alone on
  fresh-from-k3s workers, brings them to serving (it now installs what it
  needs instead of assuming the bootstrap ran).
"""

from __future__ import annotations

import pytest

from tests.lab.harness import cluster_digest, deploy, docker_host, sh

HOSTS_LINE = "127.0.1.1 builder.distcc.internal builder"


def test_builder_name_on_loopback_is_refused_before_any_change(workers):
    worker = workers[0]
    assert deploy("k3s_mode").returncode == 0
    # Docker bind-mounts /etc/hosts: rewrite it in place (sed -i would rename).
    sh(worker.container, f"cp /etc/hosts /etc/hosts.lab-test && {{ echo '{HOSTS_LINE}'; cat /etc/hosts.lab-test; }} > /etc/hosts")
    try:
        before = cluster_digest()
        run = deploy("mode_switch", json_output=False)
        assert run.returncode != 0
        message = run.error
        assert "resolves on this worker to 127.0.1.1" in message
        assert f"host {worker.fqdn}: the builder's name builder.distcc.internal resolves on this worker" in message
        assert "Fix: make builder.distcc.internal resolve to the builder's LAN address" in message
        assert message.rstrip().endswith("Nothing was changed on any host.") and message.isascii()
        assert cluster_digest() == before
    finally:
        sh(worker.container, "cat /etc/hosts.lab-test > /etc/hosts && rm -f /etc/hosts.lab-test")
    assert deploy("mode_switch").returncode == 0


def test_reset_alone_brings_a_worker_from_k3s_mode_to_serving(builder, workers):
    assert deploy("k3s_mode").returncode == 0
    run = deploy("worker_distccd_reset")
    assert run.returncode == 0, run.stderr[-3000:]
    assert not run.changed_on(builder.fqdn)
    for worker in workers:
        host = docker_host(worker)
        assert host.service("distcc").is_running
        assert not host.service("k3s-agent").is_running
        assert host.socket(f"tcp://{worker.address}:3632").is_listening
    assert deploy("worker_distccd_reset").totals["success"] == 0
    assert deploy("mode_switch").returncode == 0


DROPIN_DIR = "/etc/systemd/system/distcc.service.d"
UNIT_DRIFT = {
    "foreign drop-in": (
        f"printf '[Service]\\nEnvironment=DISTCC_CMDLIST=/etc/distcc/cmdlist\\n' > {DROPIN_DIR}/zz-local.conf",
        f"rm -f {DROPIN_DIR}/zz-local.conf",
        "zz-local.conf line 2: Environment=DISTCC_CMDLIST=/etc/distcc/cmdlist",
    ),
    "masked unit": ("systemctl mask distcc.service", "systemctl unmask distcc.service", "distcc.service is masked"),
    "hand-written unit": (
        "printf '[Service]\\nExecStartPre=/bin/true\\nExecStart=/usr/bin/distccd --daemon --no-detach\\n'"
        " > /etc/systemd/system/distcc.service",
        "rm -f /etc/systemd/system/distcc.service",
        "/etc/systemd/system/distcc.service line 2: ExecStartPre=/bin/true",
    ),
}


@pytest.mark.parametrize("case", list(UNIT_DRIFT))
def test_a_unit_changed_by_hand_is_refused_before_any_change(workers, case):
    """Made by hand on one worker in build mode, then a mode switch: refused
    while the deploy file loads, the file and the fix named, nothing changed
    on any host; once the admin undoes it, the switch goes ahead."""
    worker = workers[-1]
    breakage, undo, named = UNIT_DRIFT[case]
    assert deploy("mode_switch").returncode == 0
    sh(worker.container, f"{breakage} && systemctl daemon-reload")
    try:
        before = cluster_digest()
        run = deploy("mode_switch", json_output=False)
        assert run.returncode != 0
        message = run.error
        assert named in message, message
        assert f"host {worker.fqdn}: " in message and "Fix: " in message
        assert message.rstrip().endswith("Nothing was changed on any host.") and message.isascii()
        assert "--> Beginning operation run" not in run.stderr
        assert cluster_digest() == before
    finally:
        sh(worker.container, f"{undo} && systemctl daemon-reload")
    assert deploy("mode_switch").returncode == 0


LOGIN_DRIFT = {
    "DISTCC_HOSTS in ~/.profile": (
        "cp /home/pi/.profile /root/profile.lab-test && echo 'export DISTCC_HOSTS=localhost' >> /home/pi/.profile",
        "cp /root/profile.lab-test /home/pi/.profile && rm -f /root/profile.lab-test",
        "/home/pi/.profile line 28: export DISTCC_HOSTS=localhost (replaces the farm's host list",
    ),
    "gcc in ~/.local/bin": (
        "install -d -o pi -g pi /home/pi/.local/bin && ln -s /usr/bin/gcc /home/pi/.local/bin/gcc",
        "rm -rf /home/pi/.local",
        "/home/pi/.local/bin/gcc comes before /usr/lib/distcc on the login PATH, so `gcc` compiles locally",
    ),
}


@pytest.mark.parametrize("case", list(LOGIN_DRIFT))
def test_the_build_users_own_overrides_are_refused_before_any_change(builder, case):
    breakage, undo, named = LOGIN_DRIFT[case]
    assert deploy("mode_switch").returncode == 0
    sh(builder.container, breakage)
    try:
        before = cluster_digest()
        run = deploy("mode_switch", json_output=False)
        assert run.returncode != 0
        message = run.error
        assert named in message, message
        assert f"host {builder.fqdn}: the build user pi's own shell files take compiles away from the farm" in message
        assert message.rstrip().endswith("Nothing was changed on any host.") and message.isascii()
        assert cluster_digest() == before
    finally:
        sh(builder.container, undo)
    assert deploy("mode_switch").returncode == 0


def test_a_pip_user_bin_first_on_path_is_accepted(builder):
    """Debian's ~/.profile puts ~/.local/bin first once pip makes it: the
    compilers still run the masquerade, so the switch goes ahead."""
    sh(builder.container, "install -d -o pi -g pi /home/pi/.local/bin")
    try:
        run = deploy("mode_switch")
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.totals["success"] == 0
    finally:
        sh(builder.container, "rm -rf /home/pi/.local")
