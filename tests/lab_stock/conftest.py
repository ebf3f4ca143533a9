"""The stock Raspberry Pi OS suite: nodes that look like a freshly flashed
Raspberry Pi OS Lite (bookworm) where the deploys can tell (LAB_FLAVOR=stock:
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
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.lab.harness import Run

REPO = Path(__file__).resolve().parents[2]
PYINFRA = str(Path(sys.executable).parent / "pyinfra")
INVENTORY = "inventories/lab.py"
TIMEOUT = 600
WORKERS = 2


def pytest_collection_modifyitems(config, items):
    wanted = "stock" in (config.option.markexpr or "")
    kept, dropped = [], []
    for item in items:
        if "tests/lab_stock/" in str(item.path):
            item.add_marker(pytest.mark.stock)
            if not wanted:
                dropped.append(item)
                continue
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


class StockLab:
    """A stock-flavored lab of its own prefix: a builder and WORKERS workers."""

    def __init__(self) -> None:
        base = os.environ.get("LAB_PREFIX", "distcc-lab")
        self.prefix = os.environ.get("LAB_STOCK_PREFIX", f"{base}-stocktest")
        self.subnet = os.environ.get("LAB_STOCK_SUBNET", "172.31.248.0/24")
        self.user = os.environ.get("LAB_USER", "").strip() or "ada"
        self.report = REPO / "reports" / f"validate-{self.prefix}.json"
        self.hostnames = ["builder", *(f"worker{i}" for i in range(1, WORKERS + 1))]
        self.workers = self.hostnames[1:]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("LAB_ARCH", "LAB_WORKER_ARCHS")}
        env.update(
            LAB_PREFIX=self.prefix, LAB_SUBNET=self.subnet, LAB_FLAVOR="stock", LAB_USER=self.user,
            LAB_WORKERS=str(WORKERS), PYINFRA_YES="1",
        )
        return env

    def lab(self, command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lab", command], cwd=REPO, env=self._env(),
            capture_output=True, text=True, timeout=TIMEOUT,
        )

    def fresh(self) -> None:
        down = self.lab("down")
        assert down.returncode == 0, down.stderr
        up = self.lab("up")
        assert up.returncode == 0, up.stdout + up.stderr
        print(up.stdout)

    def pyinfra(self, deploy: str, json_output: bool = False, **data: str) -> Run:
        command = [PYINFRA, "-y"] + (["--json"] if json_output else [])
        for key, value in {"distcc_report_path": str(self.report), **data}.items():
            command += ["--data", f"{key}={value}"]
        command += [INVENTORY, f"deploys/{deploy}.py"]
        proc = subprocess.run(
            command, cwd=REPO, env=self._env(), capture_output=True, text=True, timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def validation(self) -> tuple[Run, dict]:
        """Validation, and its JSON report: {host: {check ID: (result, detail)}}."""
        self.report.unlink(missing_ok=True)
        run = self.pyinfra("cluster_distcc_validate")
        report = json.loads(self.report.read_text())
        results = {
            host: {c["id"]: (c["result"], c["detail"]) for c in checks} for host, checks in report["hosts"].items()
        }
        return run, results

    def container(self, hostname: str) -> str:
        return f"{self.prefix}-{hostname}"

    def address(self, hostname: str) -> str:
        return subprocess.run(
            ["docker", "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{self.prefix}").IPAddress}}}}',
             self.container(hostname)],
            check=True, capture_output=True, text=True,
        ).stdout.strip()

    def sh(self, hostname: str, script: str) -> str:
        """A shell script as root inside a node (the test's own eyes)."""
        proc = subprocess.run(
            ["docker", "exec", "-i", self.container(hostname), "sh", "-c", script],
            capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, f"{hostname}: {script!r} failed: {proc.stderr}"
        return proc.stdout.strip()

    def reboot(self) -> None:
        """`docker restart` of every node at once (systemd boots again), then
        `lab up`, which starts nothing new and waits for systemd and sshd."""
        with ThreadPoolExecutor(max_workers=len(self.hostnames)) as pool:
            list(pool.map(
                lambda h: subprocess.run(["docker", "restart", self.container(h)], check=True, capture_output=True,
                                         timeout=120),
                self.hostnames,
            ))
        up = self.lab("up")
        assert up.returncode == 0, up.stdout + up.stderr


@pytest.fixture(scope="session")
def stock_lab():
    lab = StockLab()
    yield lab
    if os.environ.get("LAB_STOCK_KEEP") != "1":
        lab.lab("down")
