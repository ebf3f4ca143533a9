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


def test_validation_passes(armhf):
    run = armhf.pyinfra("cluster_distcc_validate")
    assert run.returncode == 0, run.stderr[-6000:]
    assert " 0 FAIL" in run.stderr


def test_smoke_test_compiles_on_every_worker(armhf):
    run = armhf.pyinfra("cluster_distcc_smoketest")
    assert run.returncode == 0, run.output[-6000:]
    # Proven by the worker's own distccd log: the client sent plain gcc.
    for worker in ("worker1", "worker2"):
        assert "COMPILE_OK" in armhf.sh(worker, "cat /var/log/distccd/*.log 2>/dev/null || true")


def test_k3s_mode(armhf):
    run = armhf.pyinfra("k3s_mode")
    assert run.returncode == 0, run.output[-4000:]
    assert armhf.sh("builder", "systemctl is-active k3s") == "active"
    for worker in ("worker1", "worker2"):
        assert armhf.sh(worker, "systemctl is-active k3s-agent") == "active"
