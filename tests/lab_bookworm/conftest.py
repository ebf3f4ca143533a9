"""The bookworm compatibility suite: the release before trixie (Raspberry Pi
OS until 2025-10-01, still on many Pis), in a lab of its own, and a cluster
caught half-way through the upgrade (a trixie worker beside bookworm nodes).

Selected only with `-m bookworm` (make test-bookworm), as the ARM suite is
with `-m arm`. The lab has its own prefix and network, LAB_BOOKWORM_PREFIX
(default: LAB_PREFIX plus "-bookwormtest") and LAB_BOOKWORM_SUBNET (default
172.31.247.0/24), so it never touches the usual lab's containers. It runs
this machine's architecture and the fqdn flavor, is driven through
subprocesses (`python -m lab`, pyinfra) with that environment, as a user
would, and is taken down at the end (LAB_BOOKWORM_KEEP=1 keeps it).
"""

from __future__ import annotations

import json
import os

import pytest

from tests.lab.harness import PrivateLab, Run, deselect_unless_marked

WORKERS = 2


def pytest_configure(config):
    config.addinivalue_line("markers", "bookworm: needs a lab of Debian bookworm nodes; run by make test-bookworm")


def pytest_collection_modifyitems(config, items):
    deselect_unless_marked(config, items, pytest.mark.bookworm, "tests/lab_bookworm/")


class BookwormLab(PrivateLab):
    """A bookworm lab of its own prefix: a builder and WORKERS workers; the
    workers' releases can be set one by one (worker_suites)."""

    DROPPED = ("LAB_ARCH", "LAB_WORKER_ARCHS", "LAB_WORKERS", "LAB_SUITE", "LAB_WORKER_SUITES", "LAB_FLAVOR", "LAB_USER", "LAB_LEAVE_OUT")

    def __init__(self) -> None:
        base = os.environ.get("LAB_PREFIX", "distcc-lab")
        super().__init__(
            os.environ.get("LAB_BOOKWORM_PREFIX", f"{base}-bookwormtest"),
            os.environ.get("LAB_BOOKWORM_SUBNET", "172.31.247.0/24"),
        )
        self.hostnames = ["builder", *(f"worker{i}" for i in range(1, WORKERS + 1))]
        self.workers = self.hostnames[1:]
        self.worker_suites: list[str] = []

    def lab_settings(self) -> dict[str, str]:
        settings = {"LAB_SUITE": "bookworm", "LAB_WORKERS": str(WORKERS)}
        if self.worker_suites:
            settings["LAB_WORKER_SUITES"] = ",".join(self.worker_suites)
        return settings

    def up(self) -> None:
        up = self.lab("up")
        assert up.returncode == 0, up.stdout + up.stderr

    def validation(self) -> tuple[Run, dict]:
        """Validation, and its JSON report: {host: {check ID: (result, detail)}}."""
        self.report.unlink(missing_ok=True)
        run = self.pyinfra("cluster_distcc_validate")
        report = json.loads(self.report.read_text())
        results = {
            host.split(".")[0]: {c["id"]: (c["result"], c["detail"]) for c in checks}
            for host, checks in report["hosts"].items()
        }
        return run, results


@pytest.fixture(scope="session")
def bookworm_lab():
    lab = BookwormLab()
    yield lab
    if os.environ.get("LAB_BOOKWORM_KEEP") != "1":
        lab.lab("down")
