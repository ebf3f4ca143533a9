"""A bookworm cluster running k3s with its pods, taken through what a user
does: the mode switch (the pods stopped), a second one that changes nothing,
pump mode refused, validation, the smoke test, a reboot in build mode, k3s
mode (the pods running again); then one worker reflashed with trixie (the
release after bookworm) while the others still run bookworm.

The tests run in order on one lab, as a user would go through them."""

import time

import pytest

from tests.lab.harness import ok, paragraphs_of

pytestmark = pytest.mark.bookworm

TMPFS = "/tmp/kernel-build"
K3S_LEFT = "ps -eo comm= | grep -cE '^(k3s|k3s-server|k3s-agent|containerd-shim|pod-workload|pause)$' || true"
# The stand-in k3s's pods, two a node (lab/image/k3s): each a containerd-shim
# and its workload, counted by name (comm) as ps shows them.
PODS = "ps -eo comm= | grep -c '^pod-workload$' || true"
SHIMS = "ps -eo comm= | grep -c '^containerd-shim' || true"


def k3s_unit(node: str) -> str:
    return "k3s" if node == "builder" else "k3s-agent"


def assert_k3s_runs_with_its_pods(lab) -> None:
    """k3s active and enabled on every node, with its two pods running (a
    k3s just started may take a moment to start them)."""
    for node in lab.hostnames:
        assert lab.sh(node, f"systemctl is-active {k3s_unit(node)}") == "active", node
        assert lab.sh(node, f"systemctl is-enabled {k3s_unit(node)}") == "enabled", node
        deadline = time.monotonic() + 30
        while lab.sh(node, PODS) != "2" and time.monotonic() < deadline:
            time.sleep(1)
        assert lab.sh(node, PODS) == "2", lab.sh(node, "ps -ef")
        assert lab.sh(node, SHIMS) == "2", lab.sh(node, "ps -ef")


@pytest.fixture(scope="module")
def lab(bookworm_lab):
    bookworm_lab.worker_suites = []
    bookworm_lab.fresh()
    return bookworm_lab


def test_nodes_run_bookworm_with_k3s_and_its_pods(lab):
    for node in lab.hostnames:
        assert lab.sh(node, ". /etc/os-release; echo $VERSION_CODENAME") == "bookworm"
        assert lab.sh(node, "gcc -dumpfullversion").startswith("12."), node
        # bookworm mounts no tmpfs on /tmp (trixie does).
        assert lab.sh(node, "findmnt -rn -o FSTYPE --target /tmp") != "tmpfs"
    assert_k3s_runs_with_its_pods(lab)


def test_mode_switch_from_k3s_mode(lab):
    ok(lab.pyinfra("mode_switch"))
    assert lab.sh("builder", f"findmnt -rn -o FSTYPE {TMPFS}") == "tmpfs"
    for node in lab.hostnames:
        assert lab.sh(node, f"systemctl is-active {k3s_unit(node)} || true") == "inactive"
        assert int(lab.sh(node, K3S_LEFT)) == 0, lab.sh(node, "ps -ef")
    for worker in lab.workers:
        # bookworm's distcc has no unit file: systemd generates one from the init script.
        assert lab.sh(worker, "systemctl show distcc -p SourcePath --value") == "/etc/init.d/distcc"
        assert lab.sh(worker, "systemctl is-active distcc") == "active"
        assert lab.sh(worker, "systemctl is-enabled distcc") == "enabled"
    assert lab.sh("builder", "systemctl is-active distcc || true") != "active"


def test_a_second_mode_switch_changes_nothing(lab):
    again = ok(lab.pyinfra("mode_switch", json_output=True))
    assert again.totals["success"] == 0 and again.totals["error"] == 0, again.changed_operations()


def test_pump_mode_is_refused_on_bookworm_before_any_change(lab):
    """bookworm's include server fails under its Python 3.11: distcc_pump
    is refused with the reason and the fix, and nothing is installed."""
    run = lab.pyinfra("mode_switch", distcc_pump="True")
    assert run.returncode != 0
    assert "distcc_pump = True" in run.error and "bookworm" in run.error, run.output[-3000:]
    assert "Nothing was changed on any host" in run.error and "set distcc_pump = False" in run.error
    assert lab.sh("builder", "dpkg-query -W -f '${db:Status-Abbrev}' distcc-pump 2>/dev/null || true") != "ii"
    again = ok(lab.pyinfra("mode_switch", json_output=True))
    assert again.totals["success"] == 0 and again.totals["error"] == 0, again.changed_operations()


def test_validation_passes(lab):
    run, _ = lab.validation()
    assert run.returncode == 0 and " 0 FAIL" in run.stderr, run.stderr[-4000:]


def test_smoke_test_passes(lab):
    run = ok(lab.pyinfra("cluster_distcc_smoketest"))
    assert f"smoke test: {len(lab.workers)} of {len(lab.workers)} workers PASS" in run.stderr


def test_build_mode_survives_a_reboot(lab):
    lab.reboot()
    assert lab.sh("builder", f"findmnt -rn -o FSTYPE {TMPFS}") == "tmpfs"
    for worker in lab.workers:
        assert lab.sh(worker, "systemctl is-active distcc") == "active"
    run, _ = lab.validation()
    assert run.returncode == 0 and " 0 FAIL" in run.stderr, run.stderr[-4000:]
    ok(lab.pyinfra("cluster_distcc_smoketest"))
    again = ok(lab.pyinfra("mode_switch", json_output=True))
    assert again.totals["success"] == 0, again.changed_operations()


def test_k3s_mode_brings_k3s_back(lab):
    ok(lab.pyinfra("k3s_mode"))
    assert lab.sh("builder", f"findmnt -n {TMPFS} || echo none") == "none"
    assert_k3s_runs_with_its_pods(lab)
    for node in lab.hostnames:
        assert lab.sh(node, "systemctl is-active distcc || true") != "active"
    again = ok(lab.pyinfra("k3s_mode", json_output=True))
    assert again.totals["success"] == 0, again.changed_operations()


def test_a_worker_on_trixie_beside_bookworm_nodes_is_named(lab):
    """worker2 made anew with trixie (gcc 14) while the builder and worker1
    run bookworm (gcc 12): the mode switch goes through, validation FAILs
    that worker naming both releases, both compilers and the fix (one
    release on every Pi), and the smoke test FAILs it on its object's
    .comment while worker1 PASSes."""
    lab.worker_suites = ["bookworm", "trixie"]
    lab.up()
    assert lab.sh("worker2", ". /etc/os-release; echo $VERSION_CODENAME") == "trixie"
    ok(lab.pyinfra("mode_switch"))

    run, results = lab.validation()
    print(run.stderr[-6000:])
    assert run.returncode != 0
    failed = {(host, check) for host, checks in results.items() for check, (result, _) in checks.items() if result == "FAIL"}
    assert failed == {("worker2", "H-GCC"), ("worker2", "W-COMPILERS")}, failed
    detail = results["worker2"]["H-GCC"][1]
    assert "gcc 14.2.0 x86_64-linux-gnu" in detail and "on Debian GNU/Linux 13 (trixie)" in detail, detail
    assert "but the builder has gcc 12.2.0 x86_64-linux-gnu" in detail, detail
    assert "on Debian GNU/Linux 12 (bookworm)" in detail, detail
    assert "run one release on every Pi: upgrade (or reflash) the nodes together" in detail, detail
    compilers = results["worker2"]["W-COMPILERS"][1]
    assert "is gcc 14.2.0 here but 12.2.0 on the builder" in compilers, compilers
    assert "this worker runs Debian GNU/Linux 13 (trixie), the builder Debian GNU/Linux 12 (bookworm)" in compilers

    smoke = lab.pyinfra("cluster_distcc_smoketest")
    print(smoke.stderr[-6000:])
    assert smoke.returncode != 0
    assert "smoke test: 1 of 2 workers PASS" in smoke.stderr
    line = next(x for x in paragraphs_of(smoke.stderr) if x.startswith("FAIL gcc worker2."))
    assert ".comment" in line and "14.2.0" in line and "12.2.0" in line, line
