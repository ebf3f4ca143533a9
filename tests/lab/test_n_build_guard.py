"""No deploy stops or restarts distccd, unmounts the build tree or starts k3s
while a build runs (deploys/library/build_guard.py).

Each test starts a real build in the background on the builder, as the
build user in the tmpfs, the way a user in another terminal does: make
runs a compile through distcc that keeps a worker's cc1 busy for about a
minute, and a slow rule that keeps make itself running. The test waits
until the job is in flight on a worker, runs a deploy, and kills the build
(its process group, and the worker's cc1 of it) in the fixture's teardown.
"""

from __future__ import annotations

import shlex
import subprocess
import time

import pytest

from lab import docker_lab
from tests.lab.harness import big_c_source, cluster_digest, deploy, pyinfra, sh, state_digest

TREE = "/tmp/kernel-build/guard"
MAKEFILE = "all: big.o wait\nbig.o: big.c\n\tdistcc gcc -O2 -c big.c -o big.o\nwait:\n\tsleep 600\n"
ALLOW = {"distcc_build_running_ok": "True"}


def remote_jobs(worker: docker_lab.Node) -> list[int]:
    """pids of cc1 run by distccd on the worker (a remote job in flight)."""
    out = sh(worker.container, "ps -u distccd -o pid=,comm= 2>/dev/null; true", check=False)
    return [int(pid) for pid, comm in (line.split() for line in out.splitlines() if line.strip()) if comm == "cc1"]


class Build:
    def __init__(self, builder: docker_lab.Node, workers: list[docker_lab.Node]) -> None:
        self.builder, self.workers = builder, workers
        self.group = 0
        self.make_pid = 0
        self.worker: docker_lab.Node | None = None

    def start(self) -> None:
        subprocess.run(
            ["docker", "exec", "-i", self.builder.container, "sh", "-c",
             f"mkdir -p {TREE} && cat > {TREE}/big.c && chown -R pi {TREE}"],
            input=big_c_source(), text=True, check=True,
        )
        sh(self.builder.container, f"printf %s {shlex.quote(MAKEFILE)} > {TREE}/Makefile && chown pi {TREE}/Makefile")
        marker = f"{TREE}/.pgid"
        script = f"cd {TREE} && ps -o pgid= -p $$ > {marker} && exec make -j2"
        sh(self.builder.container,
           f"setsid runuser -l pi -c {shlex.quote(script)} </dev/null >/dev/null 2>&1 &")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.group = int(sh(self.builder.container, f"cat {marker} 2>/dev/null || echo 0").strip() or 0)
            make = sh(self.builder.container, "pgrep -u pi -x make || true").split()
            self.make_pid = int(make[0]) if make else 0
            self.worker = next((w for w in self.workers if remote_jobs(w)), None)
            if self.group and self.make_pid and self.worker:
                return
            time.sleep(0.5)
        raise AssertionError("the build's remote job did not reach a worker within 60 s")

    def stop(self) -> None:
        if self.group:
            sh(self.builder.container, f"/bin/kill -s KILL -- -{self.group} 2>/dev/null; true", check=False)
        for worker in self.workers:
            for pid in remote_jobs(worker):
                sh(worker.container, f"kill -KILL {pid} 2>/dev/null; true", check=False)
        sh(self.builder.container, f"rm -rf {TREE}", check=False)


@pytest.fixture
def build(builder, workers):
    running = Build(builder, workers)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def assert_refused(run, *named: str) -> None:
    assert run.returncode != 0, run.output[-3000:]
    assert "--> Beginning operation run" not in run.output
    # The paragraph is wrapped at 100 columns: compared with its words joined.
    paragraph = " ".join(run.stderr.partition("--> pyinfra error in")[2].split())
    assert "a build is running" in paragraph, run.output[-3000:]
    for text in named:
        assert text in paragraph, (text, paragraph)
    assert "distcc_build_running_ok=True" in paragraph
    assert run.output.isascii()
    message = run.stderr.partition("--> pyinfra error in")[2].splitlines()[1:]
    assert message and all(len(line) <= 100 for line in message)


def test_k3s_mode_under_a_running_build_is_refused_naming_it(build):
    before = cluster_digest()
    run = deploy("k3s_mode", json_output=False)
    assert_refused(run, f"pid {build.make_pid} make -j2 in {TREE}", "distcc gcc -O2 -c big.c")
    assert cluster_digest() == before


def test_a_worker_with_jobs_in_flight_refuses_its_k3s_mode(build):
    """Only the worker in the run (--limit): its own distccd job is named."""
    worker = build.worker
    before = state_digest(worker.container)
    run = pyinfra("--limit", worker.fqdn, "deploys/k3s_mode.py", json_output=False)
    assert_refused(run, f"host {worker.fqdn}", "cc1 (a job of distccd pid", "connections to distccd from")
    assert state_digest(worker.container) == before


def test_a_reset_that_would_restart_distccd_is_refused(build):
    before = cluster_digest()
    run = deploy("mode_switch", data={"distcc_force_restart": "True"}, json_output=False)
    assert_refused(run, "stop and restart distccd", f"in {TREE}")
    assert cluster_digest() == before


def test_a_mode_switch_that_changes_nothing_goes_ahead_under_a_build(build):
    run = deploy("mode_switch")
    assert run.returncode == 0, run.output[-3000:]
    # Nothing changes: not even the client state, which is the running
    # build's (its client log is the build report's window).
    assert run.changed_operations() == []
    assert str(build.make_pid) in sh(build.builder.container, "pgrep -u pi -x make || true")
    assert remote_jobs(build.worker)


def test_build_running_ok_goes_ahead(build):
    try:
        run = deploy("k3s_mode", data=ALLOW)
        assert run.returncode == 0, run.output[-3000:]
        assert "a build is running" not in run.output
        assert any("Stop and disable distccd" in op for op in run.changed_on(build.worker.fqdn))
    finally:
        build.stop()
        back = deploy("mode_switch")
        assert back.returncode == 0, back.output[-3000:]
