"""The emulated ARM lab suite: nodes of the architectures real Raspberry Pis
run (arm64, armhf), under qemu-user, in a lab of its own.

Selected only with `-m arm` (make test-arm), so `make test` does not pay for
emulated labs. The lab here has its own prefix and network, LAB_ARM_PREFIX
(default: LAB_PREFIX plus "-armtest") and LAB_ARM_SUBNET (default
172.31.249.0/24), so it never touches the usual lab's containers; it is driven
through subprocesses (`python -m lab`, pyinfra) with that environment, as a
user would, and taken down at the end (LAB_ARM_KEEP=1 keeps it).
"""

from __future__ import annotations

import json
import os

import pytest

from tests.lab.harness import PrivateLab, deselect_unless_marked


def pytest_configure(config):
    config.addinivalue_line("markers", "arm: needs emulated arm64/armhf lab nodes (qemu-user); run by make test-arm")


def pytest_collection_modifyitems(config, items):
    deselect_unless_marked(config, items, pytest.mark.arm, "tests/lab_arm/")


class ArmLab(PrivateLab):
    """A lab of its own prefix, started with the architectures asked for."""

    DROPPED = ("LAB_ARCH", "LAB_WORKER_ARCHS", "LAB_WORKERS", "LAB_WORKER_SUITES", "LAB_LEAVE_OUT")
    # Emulated nodes start every process several times slower than native ones.
    TIMEOUT = 1800

    def __init__(self) -> None:
        base = os.environ.get("LAB_PREFIX", "distcc-lab")
        super().__init__(
            os.environ.get("LAB_ARM_PREFIX", f"{base}-armtest"), os.environ.get("LAB_ARM_SUBNET", "172.31.249.0/24")
        )
        self.env: dict[str, str] = {}

    def lab_settings(self) -> dict[str, str]:
        return self.env

    def fresh(self, arch: str, worker_archs: list[str] | None = None, workers: int | None = None) -> None:
        """Down, then up anew with these architectures."""
        self.env = {"LAB_ARCH": arch}
        if worker_archs:
            self.env["LAB_WORKER_ARCHS"] = ",".join(worker_archs)
        if workers:
            self.env["LAB_WORKERS"] = str(workers)
        super().fresh()

    def assert_distccd_tmp_read(self, workers: list[str]) -> None:
        """W-TMP-SPACE PASSes on every worker, from distccd's own /tmp: the
        256 MiB tmpfs its unit mounts (distcc_worker_tmp_size), read through
        /proc/PID/root under qemu-user, where nsenter cannot enter it."""
        hosts = json.loads(self.report.read_text())["hosts"]
        for worker in workers:
            name = next(h for h in hosts if h.startswith(f"{worker}."))
            found = next(c for c in hosts[name] if c["id"] == "W-TMP-SPACE")
            assert found["result"] == "PASS", found
            assert found["detail"].startswith("distccd's own /tmp has 256 MiB free"), found


@pytest.fixture(scope="session")
def arm_lab():
    lab = ArmLab()
    yield lab
    if os.environ.get("LAB_ARM_KEEP") != "1":
        lab.lab("down")
