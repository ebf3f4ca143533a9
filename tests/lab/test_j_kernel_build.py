"""A real kernel build through the farm, judged by the build report.

Debian's linux-source (6.1 on bookworm, 6.12 on trixie) is unpacked on the builder's tmpfs, configured
with tinyconfig, and part of it (a few hundred compile jobs) is built as the
build user in a login shell with `make -jN`: the masquerade, the host list
and the fallback as the guard set them. The report must then show at least
95% of the C compile jobs on the workers, none failed, and per worker exactly
the jobs that worker's own log has since the mark.

The builder's build tools (make, flex, bison, bc, libelf-dev) are test
setup, installed here with apt inside the lab container: the package's
deploys do not install them.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.lab.harness import REPO, cluster_digest, deploy, sh

TMPFS = "/tmp/kernel-build"
# The kernel source each Debian release packages.
LINUX_SOURCE = {"bookworm": "linux-source-6.1", "trixie": "linux-source-6.12"}
BUILD_TOOLS = "make flex bison bc libelf-dev libssl-dev xz-utils perl"
# Directories of the tinyconfig tree built after the mark: about 300 C files.
PART = "kernel/ mm/ fs/ lib/"
REPORT = REPO / "reports" / "build-report.json"
MARK = REPO / "reports" / "build-mark.json"


def as_build_user(container: str, script: str, timeout: int = 900) -> str:
    """A login shell of the build user, as a person logged in on the builder."""
    proc = subprocess.run(
        ["docker", "exec", "-u", "pi", "-i", container, "sh", "-l", "-c", script],
        capture_output=True, text=True, timeout=timeout,
    )
    assert proc.returncode == 0, f"{script!r} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def nodes(lab):
    run = deploy("mode_switch", data={"distcc_tmpfs_size": "3G"})
    assert run.returncode == 0, run.stderr[-3000:]
    yield lab
    # The kernel tree fills the 3G tmpfs: the lab goes back to what the other
    # modules expect (the lab's own tmpfs size, empty).
    assert deploy("k3s_mode", data={"distcc_discard_tmpfs": True}).returncode == 0
    assert deploy("mode_switch").returncode == 0


@pytest.fixture(scope="module")
def kernel_tree(builder):
    package = LINUX_SOURCE[builder.suite]
    source = f"{TMPFS}/{package}"
    sh(builder.container,
       f"dpkg -s {BUILD_TOOLS} {package} >/dev/null 2>&1 || "
       f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends {BUILD_TOOLS} {package} >/dev/null")
    as_build_user(builder.container, f"[ -f {source}/Makefile ] || tar -C {TMPFS} -xJf /usr/src/{package}.tar.xz")
    # Configuration and the host tools are built before the mark: the
    # report then covers the build of the part alone.
    as_build_user(builder.container, f"cd {source} && make -s tinyconfig && make -s -j$(distcc -j) prepare")
    return source


def worker_lines_since_mark(worker, mark: dict) -> int:
    """Job lines in the worker's own log since the mark, counted independently."""
    size = mark["hosts"][worker.fqdn]["size"]
    out = sh(worker.container,
             f"tail -c +{size + 1} /var/log/distccd/distccd.log | "
             "grep -cE '\\(dcc_job_summary\\)|denied by access list' || true")
    return int(out.strip() or 0)


def test_part_of_a_kernel_builds_on_the_workers(builder, workers, kernel_tree):
    # Objects of an earlier run would leave nothing to compile.
    as_build_user(builder.container, f"cd {kernel_tree} && find {PART} -name '*.o' -delete")
    mark = deploy("cluster_distcc_mark", json_output=False)
    assert mark.returncode == 0, mark.stderr[-3000:]
    as_build_user(builder.container, f"cd {kernel_tree} && make -s -j$(distcc -j) {PART}", timeout=600)

    before = cluster_digest()
    run = deploy("cluster_distcc_report", json_output=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert cluster_digest() == before, "the report changed a host"
    assert run.stderr.isascii()
    report = json.loads(REPORT.read_text())
    builder_jobs = report["builder"]

    assert builder_jobs["compile_jobs"] >= 200, run.stderr[-3000:]
    assert builder_jobs["remote_share"] >= 0.95, run.stderr[-3000:]
    for reason in ("fallback after a failure", "backoff", "no host free", "no host list"):
        assert builder_jobs["local"].get(reason, 0) == 0, run.stderr[-3000:]
    assert builder_jobs["failed_no_fallback"] == 0

    marks = json.loads(MARK.read_text())
    for worker in workers:
        jobs = report["workers"][worker.fqdn]
        assert jobs["failed"] == {}, (worker.fqdn, jobs)
        assert jobs["ok"] > 0, (worker.fqdn, jobs)
        assert jobs["total"] == worker_lines_since_mark(worker, marks) == jobs["log_lines"]
        # Both ends agree: what the builder saw compiled there is what the worker logged.
        assert builder_jobs["remote_ok"][worker.fqdn] == jobs["ok"]
    assert report["backoff"] == []


def test_backoff_is_named_by_the_report_and_cleared_by_the_mode_switch(builder, workers):
    """A failed job's backoff marker idles its worker for later builds too:
    the report names it, the mode switch removes it, and a second switch
    changes nothing."""
    marker = f"/home/pi/.distcc/lock/backoff_tcp_{workers[0].fqdn}_3632_0"
    as_build_user(builder.container, f"mkdir -p ~/.distcc/lock && touch {marker}")
    run = deploy("cluster_distcc_report", json_output=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"{workers[0].fqdn}:3632: ACTIVE" in run.stderr
    assert [b["file"] for b in json.loads(REPORT.read_text())["backoff"]] == [marker]

    switch = deploy("mode_switch", data={"distcc_tmpfs_size": "3G"})
    assert switch.returncode == 0, switch.stderr[-3000:]
    assert "mode switch | builder client only | Client state of the last build cleared (backoff markers, client log)" \
        in switch.changed_on(builder.fqdn)
    assert sh(builder.container, f"ls {marker} 2>/dev/null || true").strip() == ""
    again = deploy("mode_switch", data={"distcc_tmpfs_size": "3G"})
    assert again.totals["success"] == 0, again.changed_operations()
