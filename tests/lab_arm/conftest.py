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
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.harness import Run

REPO = Path(__file__).resolve().parents[2]
PYINFRA = str(Path(sys.executable).parent / "pyinfra")
INVENTORY = "inventories/lab.py"
# Emulated nodes start every process several times slower than native ones.
TIMEOUT = 1800


def pytest_configure(config):
    config.addinivalue_line("markers", "arm: needs emulated arm64/armhf lab nodes (qemu-user); run by make test-arm")


def pytest_collection_modifyitems(config, items):
    wanted = "arm" in (config.option.markexpr or "")
    kept, dropped = [], []
    for item in items:
        if "tests/lab_arm/" in str(item.path):
            item.add_marker(pytest.mark.arm)
            if not wanted:
                dropped.append(item)
                continue
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


class ArmLab:
    """A lab of its own prefix, started with the architectures asked for."""

    def __init__(self) -> None:
        base = os.environ.get("LAB_PREFIX", "distcc-lab")
        self.prefix = os.environ.get("LAB_ARM_PREFIX", f"{base}-armtest")
        self.subnet = os.environ.get("LAB_ARM_SUBNET", "172.31.249.0/24")
        self.report = REPO / "reports" / f"validate-{self.prefix}.json"
        self.env: dict[str, str] = {}

    def _env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("LAB_ARCH", "LAB_WORKER_ARCHS", "LAB_WORKERS")}
        env.update(LAB_PREFIX=self.prefix, LAB_SUBNET=self.subnet, PYINFRA_YES="1", **self.env, **extra)
        return env

    def lab(self, command: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lab", command], cwd=REPO, env=self._env(**extra),
            capture_output=True, text=True, timeout=TIMEOUT,
        )

    def fresh(self, arch: str, worker_archs: list[str] | None = None, workers: int | None = None) -> None:
        """Down, then up anew with these architectures."""
        self.env = {"LAB_ARCH": arch}
        if worker_archs:
            self.env["LAB_WORKER_ARCHS"] = ",".join(worker_archs)
        if workers:
            self.env["LAB_WORKERS"] = str(workers)
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

    def docker(self, command: str, hostname: str) -> None:
        subprocess.run(["docker", command, self.container(hostname)], check=True, capture_output=True, timeout=120)

    def container(self, hostname: str) -> str:
        return f"{self.prefix}-{hostname}"

    def sh(self, hostname: str, script: str) -> str:
        """A shell script as root inside a node (the test's own eyes)."""
        proc = subprocess.run(
            ["docker", "exec", "-i", self.container(hostname), "sh", "-c", script],
            capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, f"{hostname}: {script!r} failed: {proc.stderr}"
        return proc.stdout.strip()


@pytest.fixture(scope="session")
def arm_lab():
    lab = ArmLab()
    yield lab
    if os.environ.get("LAB_ARM_KEEP") != "1":
        lab.lab("down")
