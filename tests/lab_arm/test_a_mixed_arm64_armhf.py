"""An arm64 builder with an arm64 and an armhf worker, as a cluster of CM4s
where one still runs the 32-bit Raspberry Pi OS: the mode switch works, and
validation names the armhf worker's gcc as the one that does not match."""

import json

import pytest

pytestmark = pytest.mark.arm

ARCHS = {"builder": ("arm64", "aarch64-linux-gnu"), "worker1": ("arm64", "aarch64-linux-gnu"),
         "worker2": ("armhf", "arm-linux-gnueabihf")}


@pytest.fixture(scope="module")
def mixed(arm_lab):
    arm_lab.fresh("arm64", ["arm64", "armhf"])
    return arm_lab


def test_nodes_run_the_architectures_asked_for(mixed):
    for node, (arch, triple) in ARCHS.items():
        assert mixed.sh(node, "dpkg --print-architecture") == arch
        assert mixed.sh(node, "gcc -dumpmachine") == triple


def test_nodes_boot_clean_under_emulation(mixed):
    """The credential-loading units that qemu-user breaks are fixed in the
    image, so what they make exists and systemd says "running"."""
    for node in ARCHS:
        assert mixed.sh(node, "systemctl is-system-running || true") == "running", mixed.sh(
            node, "systemctl --failed --no-legend || true"
        )
        assert mixed.sh(node, "stat -c %a /tmp /var/tmp").split() == ["1777", "1777"]
        assert mixed.sh(node, "test -f /run/utmp && getent passwd systemd-network | cut -d: -f1") == "systemd-network"
        assert mixed.sh(node, "su pi -c 'sudo -n id -u'") == "0"


def test_mode_switch_works(mixed):
    run = mixed.pyinfra("mode_switch")
    assert run.returncode == 0, run.output[-4000:]


# Under qemu-user, ps shows each process's command line behind the
# interpreter ("/usr/libexec/qemu-binfmt/aarch64-binfmt-P /usr/bin/distccd
# /usr/bin/distccd --daemon ..."), so the reset's health check, which compares
# distccd's command line with the override's, restarts a healthy distccd on
# every run. A lab artifact (a Pi shows the plain command line), reported to
# the package; strict, so that the day the check tolerates it, this says so.
@pytest.mark.xfail(reason="qemu-user's interpreter prefix in ps args makes the reset restart distccd", strict=True)
def test_mode_switch_again_changes_nothing(mixed):
    again = mixed.pyinfra("mode_switch", json_output=True)
    assert again.returncode == 0, again.output[-4000:]
    assert again.totals["success"] == 0 and again.totals["error"] == 0, again.changed_operations()


def test_validation_names_the_armhf_workers_gcc(mixed):
    mixed.report.unlink(missing_ok=True)
    run = mixed.pyinfra("cluster_distcc_validate")
    print(run.stderr[-6000:])
    assert run.returncode != 0
    failed = json.loads(mixed.report.read_text())["failed"]
    gcc_failed = [f for f in failed if f.startswith("H-GCC@")]
    assert [f.split("@")[1].split(".")[0] for f in gcc_failed] == ["worker2"], failed
    line = next(x for x in run.stderr.splitlines() if x.startswith("FAIL H-GCC worker2."))
    assert "arm-linux-gnueabihf" in line and "aarch64-linux-gnu" in line, line


def test_k3s_mode_brings_k3s_back(mixed):
    run = mixed.pyinfra("k3s_mode")
    assert run.returncode == 0, run.output[-4000:]
    assert mixed.sh("builder", "systemctl is-active k3s") == "active"
    assert mixed.sh("builder", "findmnt -n /tmp/kernel-build || echo none") == "none"
    for worker in ("worker1", "worker2"):
        assert mixed.sh(worker, "systemctl is-active k3s-agent") == "active"
        assert mixed.sh(worker, "systemctl is-active distcc || true") == "inactive"
