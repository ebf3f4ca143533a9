"""An arm64 builder with an arm64 and an armhf worker, as a cluster of CM4s
where one still runs the 32-bit Raspberry Pi OS: the mode switch works, and
validation names the armhf worker's gcc as the one that does not match."""

import json

import pytest

from tests.lab.harness import paragraphs_of

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
        # What systemd-tmpfiles-setup (legacy.conf) and systemd-sysusers make.
        assert mixed.sh(node, "test -d /run/lock/subsys && getent passwd systemd-network | cut -d: -f1") == "systemd-network"
        assert mixed.sh(node, "su pi -c 'sudo -n id -u'") == "0"


def test_mode_switch_works(mixed):
    run = mixed.pyinfra("mode_switch")
    assert run.returncode == 0, run.output[-4000:]


# Under qemu-user ps shows each process's command line behind the binfmt
# interpreter; the facts drop it, so a healthy distccd is left alone.
def test_mode_switch_again_changes_nothing(mixed):
    again = mixed.pyinfra("mode_switch", json_output=True)
    assert again.returncode == 0, again.output[-4000:]
    assert again.totals["success"] == 0 and again.totals["error"] == 0, again.changed_operations()


def test_validation_names_the_armhf_workers_compiler(mixed):
    """The ARM client sends plain gcc; on the armhf worker that is a 32-bit
    compiler: H-GCC and W-COMPILERS FAIL there, naming both targets (from the
    compiler and dpkg, never uname) and the fix; nothing else FAILs."""
    mixed.report.unlink(missing_ok=True)
    run = mixed.pyinfra("cluster_distcc_validate")
    print(run.stderr[-6000:])
    assert run.returncode != 0
    failed = json.loads(mixed.report.read_text())["failed"]
    assert sorted(f.split(".")[0] for f in failed) == ["H-GCC@worker2", "W-COMPILERS@worker2"], failed
    mixed.assert_distccd_tmp_read(["worker1", "worker2"])
    line = next(x for x in paragraphs_of(run.stderr) if x.startswith("FAIL W-COMPILERS worker2."))
    # Plain names: the ARM client rewrites cc to gcc and sends no triplet.
    gcc = mixed.sh("worker2", "readlink -f /usr/bin/gcc")
    assert f"`gcc` (what the builder sends for cc) is {gcc}" in line, line
    assert gcc.startswith("/usr/bin/arm-linux-gnueabihf-gcc-"), gcc
    assert "`g++` (what the builder sends for c++)" in line, line
    assert "for arm-linux-gnueabihf (dpkg armhf), but the builder's is for aarch64-linux-gnu (dpkg arm64)" in line
    assert line.count("Fix: ") == 1
    assert "Fix: run the builder's architecture (arm64) on this worker, or remove it from the workers group" in line
    gcc_line = next(x for x in paragraphs_of(run.stderr) if x.startswith("FAIL H-GCC worker2."))
    assert "objects would be for the wrong CPU; run the builder's architecture (arm64)" in gcc_line, gcc_line
    assert "CROSS_COMPILE" not in line  # Debian has no aarch64 cross compiler for armhf


def test_smoke_test_never_passes_the_wrong_target(mixed):
    """worker2 returns a 32-bit ARM object for the arm64 builder's job: the
    smoke test FAILs it on the object's ELF header and passes worker1."""
    run = mixed.pyinfra("cluster_distcc_smoketest")
    print(run.stderr[-6000:])
    assert run.returncode != 0
    assert "smoke test: 1 of 2 workers PASS" in run.stderr
    line = next(x for x in paragraphs_of(run.stderr) if x.startswith("FAIL gcc worker2."))
    assert "ELF differs ELF32/ARM/ (builder: ELF64/AArch64/)" in line, line


def test_the_fix_taking_the_armhf_worker_out_gives_a_clean_farm(mixed):
    """The fix validation names: the armhf worker out of the workers group
    (LAB_LEAVE_OUT leaves it out of the lab's inventory, as a user deletes
    it from theirs). Then the mode switch, validation and the smoke test all
    pass; the worker is back for k3s mode."""
    mixed.env["LAB_LEAVE_OUT"] = "worker2"
    try:
        run = mixed.pyinfra("mode_switch")
        assert run.returncode == 0, run.output[-4000:]
        mixed.report.unlink(missing_ok=True)
        check = mixed.pyinfra("cluster_distcc_validate")
        assert check.returncode == 0 and " 0 WARN, 0 FAIL" in check.stderr, check.stderr[-6000:]
        mixed.assert_distccd_tmp_read(["worker1"])
        smoke = mixed.pyinfra("cluster_distcc_smoketest")
        assert smoke.returncode == 0 and "smoke test: 1 of 1 workers PASS" in smoke.stderr, smoke.output[-6000:]
    finally:
        del mixed.env["LAB_LEAVE_OUT"]


def test_k3s_mode_brings_k3s_back(mixed):
    run = mixed.pyinfra("k3s_mode")
    assert run.returncode == 0, run.output[-4000:]
    assert mixed.sh("builder", "systemctl is-active k3s") == "active"
    assert mixed.sh("builder", "findmnt -n /tmp/kernel-build || echo none") == "none"
    for worker in ("worker1", "worker2"):
        assert mixed.sh(worker, "systemctl is-active k3s-agent") == "active"
        assert mixed.sh(worker, "systemctl is-active distcc || true") == "inactive"
