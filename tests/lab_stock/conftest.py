"""The stock Raspberry Pi OS suite: nodes that look like a freshly flashed
Raspberry Pi OS Lite (trixie, unless LAB_SUITE says bookworm) where the deploys can tell (LAB_FLAVOR=stock:
short hostnames on Debian's 127.0.1.1 line, names resolved by the network's
DNS, a first user that is not `pi`, Debian's ~/.profile with ~/.local/bin,
python3, the apt-daily timers), in a lab of its own.

Selected only with `-m stock` (make test-stock), as the ARM suite is with
`-m arm`. The lab here has its own prefix and network, LAB_STOCK_PREFIX
(default: LAB_PREFIX plus "-stocktest") and LAB_STOCK_SUBNET (default
172.31.248.0/24), so it never touches the usual lab's containers; its user is
LAB_USER (default ada). It is driven through subprocesses (`python -m lab`,
pyinfra) with that environment, as a user would, and taken down at the end
(LAB_STOCK_KEEP=1 keeps it).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.lab.harness import PrivateLab, Run, deselect_unless_marked

WORKERS = 2


def pytest_collection_modifyitems(config, items):
    deselect_unless_marked(config, items, pytest.mark.stock, "tests/lab_stock/")


class StockLab(PrivateLab):
    """A stock-flavored lab of its own prefix: a builder and WORKERS workers."""

    def __init__(self) -> None:
        base = os.environ.get("LAB_PREFIX", "distcc-lab")
        super().__init__(
            os.environ.get("LAB_STOCK_PREFIX", f"{base}-stocktest"),
            os.environ.get("LAB_STOCK_SUBNET", "172.31.248.0/24"),
        )
        self.user = os.environ.get("LAB_USER", "").strip() or "ada"
        self.hostnames = ["builder", *(f"worker{i}" for i in range(1, WORKERS + 1))]
        self.workers = self.hostnames[1:]

    def lab_settings(self) -> dict[str, str]:
        return {"LAB_FLAVOR": "stock", "LAB_USER": self.user, "LAB_WORKERS": str(WORKERS)}

    def validation(self) -> tuple[Run, dict]:
        """Validation, and its JSON report: {host: {check ID: (result, detail)}}."""
        self.report.unlink(missing_ok=True)
        run = self.pyinfra("cluster_distcc_validate")
        report = json.loads(self.report.read_text())
        results = {
            host: {c["id"]: (c["result"], c["detail"]) for c in checks} for host, checks in report["hosts"].items()
        }
        return run, results

    def address(self, hostname: str) -> str:
        return subprocess.run(
            ["docker", "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{self.prefix}").IPAddress}}}}',
             self.container(hostname)],
            check=True, capture_output=True, text=True,
        ).stdout.strip()


@pytest.fixture(scope="session")
def stock_lab():
    lab = StockLab()
    yield lab
    if os.environ.get("LAB_STOCK_KEEP") != "1":
        lab.lab("down")
