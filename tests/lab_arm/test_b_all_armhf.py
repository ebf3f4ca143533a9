"""A cluster of 32-bit Raspberry Pi OS nodes (armhf), the whole cycle: the
mode switch, validation, a real distributed compile, and back to k3s mode.
The distcc client on ARM sends plain `gcc` (no target triple), the path a
real Pi takes and an amd64 lab never does."""

import pytest

pytestmark = pytest.mark.arm


@pytest.fixture(scope="module")
def armhf(arm_lab):
    arm_lab.fresh("armhf", workers=2)
    return arm_lab


def test_every_node_is_armhf(armhf):
    for node in ("builder", "worker1", "worker2"):
        assert armhf.sh(node, "dpkg --print-architecture; gcc -dumpmachine").split() == ["armhf", "arm-linux-gnueabihf"]
        assert armhf.sh(node, "systemctl is-system-running || true") == "running"


def test_mode_switch(armhf):
    run = armhf.pyinfra("mode_switch")
    assert run.returncode == 0, run.output[-4000:]


def test_mode_switch_again_changes_nothing(armhf):
    """Under qemu-user ps shows the binfmt interpreter before distccd's own
    command line; the facts drop it, so a healthy distccd is left alone."""
    again = armhf.pyinfra("mode_switch", json_output=True)
    assert again.returncode == 0, again.output[-4000:]
    assert again.totals["success"] == 0 and again.totals["error"] == 0, again.changed_operations()


def test_validation_passes(armhf):
    armhf.report.unlink(missing_ok=True)
    run = armhf.pyinfra("cluster_distcc_validate")
    assert run.returncode == 0, run.stderr[-6000:]
    assert " 0 WARN, 0 FAIL" in run.stderr, run.stderr[-6000:]
    armhf.assert_distccd_tmp_read(["worker1", "worker2"])


def test_a_distributed_compile_sends_plain_gcc(armhf):
    """The build user's distcc, DISTCC_FALLBACK=0, one worker at a time: the
    ARM client sends plain gcc (its compiled-in triple names no installed
    compiler), and the worker's whitelist must accept it."""
    for worker in ("worker1", "worker2"):
        client = armhf.sh(
            "builder",
            "su - pi -c 'd=$(mktemp -d /tmp/kernel-build/arm-test.XXXXXX) && cd $d"
            " && echo \"int f(int x) { return x * 3; }\" > small.c"
            f" && DISTCC_HOSTS=$(getent hosts {worker}.$(hostname -d) | cut -d\" \" -f1)/1 DISTCC_FALLBACK=0"
            " DISTCC_VERBOSE=1 DISTCC_LOG=$d/client.log timeout 300 distcc gcc -O2 -c small.c -o small.o;"
            " echo rc=$?; grep -E \"exec on|completed ok\" client.log; rm -rf $d'",
        )
        assert "rc=0" in client and "exec on" in client and ": gcc -O2 -c small.c" in client, client
        summary = armhf.sh(worker, "grep 'dcc_job_summary.* small.c$' /var/log/distccd/distccd.log | tail -n 1")
        assert "COMPILE_OK" in summary and summary.endswith(" gcc small.c"), summary


# Under qemu-user cc1 is about 20 times slower than natively: the lab's
# inventory gives emulated nodes distcc_smoke_timeout = 600.
def test_smoke_test_compiles_on_every_worker(armhf):
    run = armhf.pyinfra("cluster_distcc_smoketest")
    print(run.stderr[-4000:])
    assert run.returncode == 0, run.output[-6000:]
    assert "smoke test: 2 of 2 workers PASS" in run.output


def test_k3s_mode(armhf):
    run = armhf.pyinfra("k3s_mode")
    assert run.returncode == 0, run.output[-4000:]
    assert armhf.sh("builder", "systemctl is-active k3s") == "active"
    for worker in ("worker1", "worker2"):
        assert armhf.sh(worker, "systemctl is-active k3s-agent") == "active"
