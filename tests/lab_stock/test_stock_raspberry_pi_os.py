"""A cluster of stock Raspberry Pi OS Lite nodes running k3s with its pods:
the mode switch, a second one that changes nothing, validation with short
names and ~/.local/bin first on the build user's PATH, the smoke test, a
reboot in build mode with no redeploy, k3s mode, and a reboot in k3s mode.

The tests run in order on one lab, as a user would go through them."""

import subprocess
import time

import pytest

from lab.docker_lab import SSH_KEY

pytestmark = pytest.mark.stock

TMPFS = "/tmp/kernel-build"
# Processes of k3s and its pods, by name (comm) as ps shows them.
PODS = "ps -eo comm= | grep -c '^pod-workload$' || true"
SHIMS = "ps -eo comm= | grep -c '^containerd-shim' || true"
K3S_LEFT = "ps -eo comm= | grep -cE '^(k3s|k3s-server|k3s-agent|containerd-shim|pod-workload|pause)$' || true"
DISTCCD_LISTENING = "ss -Hltn 'sport = :3632' | wc -l"


def k3s_unit(node: str) -> str:
    return "k3s" if node == "builder" else "k3s-agent"


@pytest.fixture(scope="module")
def stock(stock_lab):
    stock_lab.fresh()
    return stock_lab


def settled(stock, node: str, script: str, want: str, seconds: int = 30) -> str:
    """The script's output once it is `want`, or its last output after a
    while: a unit that just started may need a moment to fork or listen."""
    deadline = time.monotonic() + seconds
    while (out := stock.sh(node, script)) != want and time.monotonic() < deadline:
        time.sleep(1)
    return out


def ok(run):
    assert run.returncode == 0, run.output[-4000:]
    return run


def assert_k3s_mode(stock):
    """k3s and two pods per node, no distccd and no build tmpfs anywhere."""
    for node in stock.hostnames:
        assert stock.sh(node, f"systemctl is-active {k3s_unit(node)}") == "active", node
        assert stock.sh(node, f"systemctl is-enabled {k3s_unit(node)}") == "enabled", node
        assert settled(stock, node, PODS, "2") == "2", stock.sh(node, "ps -ef")
        assert stock.sh(node, SHIMS) == "2", stock.sh(node, "ps -ef")
        assert int(stock.sh(node, DISTCCD_LISTENING)) == 0, node
        assert stock.sh(node, "systemctl is-active distcc || true") != "active", node
    assert stock.sh("builder", f"findmnt -n {TMPFS} || echo none") == "none"


def test_nodes_look_like_stock_raspberry_pi_os(stock):
    user, home = stock.user, f"/home/{stock.user}"
    for node in stock.hostnames:
        # A short hostname on Debian's 127.0.1.1 line: hostname -f has no dot.
        assert stock.sh(node, "hostname") == node
        assert stock.sh(node, "hostname -f") == node
        assert f"127.0.1.1\t{node}" in stock.sh(node, "cat /etc/hosts").splitlines()
        # The other nodes are in no hosts file: the network's DNS resolves them.
        for other in stock.hostnames:
            if other != node:
                assert stock.sh(node, f"grep -c {other} /etc/hosts || true") == "0"
                assert stock.sh(node, f"getent ahostsv4 {other}").split()[0] == stock.address(other), (node, other)
        # No pi user; the first user has passwordless sudo and Debian's ~/.profile.
        assert stock.sh(node, "id -u pi >/dev/null 2>&1 && echo pi || echo none") == "none"
        assert stock.sh(node, f"cmp {home}/.profile /etc/skel/.profile && echo same") == "same"
        login_path = stock.sh(node, f"su - {user} -c 'echo $PATH'").split(":")
        assert login_path[0] == f"{home}/.local/bin", login_path
        assert stock.sh(node, "python3 -c 'print(1 + 1)'") == "2"
        # The apt-daily timers enabled, as on a stock system; moved far away here.
        for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
            assert stock.sh(node, f"systemctl is-enabled {timer}; systemctl is-active {timer}").split() == [
                "enabled", "active"]
            assert "2199-12-31" in stock.sh(node, f"systemctl list-timers --all --no-legend {timer}")
        # k3s's unit settings: stopping the unit leaves the pods running.
        assert stock.sh(node, f"systemctl show -p KillMode --value {k3s_unit(node)}") == "process"
        # Reached as the first user over SSH, with passwordless sudo.
        ssh = subprocess.run(
            ["ssh", "-i", str(SSH_KEY), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", f"{user}@{stock.address(node)}", "id -un; sudo -n id -un"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        assert ssh.stdout.split() == [user, "root"], ssh.stderr


def test_k3s_runs_with_its_pods_before_the_switch(stock):
    assert_k3s_mode(stock)


def test_mode_switch_from_k3s_mode_then_no_changes(stock):
    ok(stock.pyinfra("mode_switch"))
    for node in stock.hostnames:
        assert int(stock.sh(node, K3S_LEFT)) == 0, stock.sh(node, "ps -ef")
        assert stock.sh(node, f"systemctl is-enabled {k3s_unit(node)} || true") == "disabled"
    again = ok(stock.pyinfra("mode_switch", json_output=True))
    assert again.totals["success"] == 0 and again.totals["error"] == 0, again.changed_operations()


def test_validation_passes_on_short_names_and_local_bin(stock):
    """0 FAIL; H-NAMES passes with no domain anywhere; B-PATH passes though
    ~/.local/bin comes first on the build user's login PATH."""
    run, results = stock.validation()
    assert run.returncode == 0 and " 0 FAIL" in run.stderr, run.stderr[-6000:]
    assert sorted(results) == sorted(stock.hostnames)
    for node in stock.hostnames:
        result, detail = results[node]["H-NAMES"]
        assert result == "PASS" and detail.startswith(f"{node} (no domain)"), detail
    home = f"/home/{stock.user}"
    assert stock.sh("builder", f"su - {stock.user} -c 'echo $PATH'").split(":")[:2] == [
        f"{home}/.local/bin", "/usr/lib/distcc"]
    result, detail = results["builder"]["B-PATH"]
    assert result == "PASS" and f"after {home}/.local/bin on {stock.user}'s login PATH" in detail, detail


def test_smoke_test_passes_on_every_worker(stock):
    smoke = ok(stock.pyinfra("cluster_distcc_smoketest"))
    assert f"smoke test: {len(stock.workers)} of {len(stock.workers)} workers PASS" in smoke.stderr, smoke.stderr
    for worker in stock.workers:
        assert any(line.split()[:2] == [worker, "PASS"] for line in smoke.stderr.splitlines()), smoke.stderr


def test_build_mode_survives_a_reboot_without_redeploy(stock):
    stock.sh("builder", f"echo lost > {TMPFS}/object-of-the-last-build.o")
    stock.reboot()
    for node in stock.hostnames:
        assert stock.sh(node, "hostname -f") == node
        assert int(stock.sh(node, K3S_LEFT)) == 0, stock.sh(node, "ps -ef")
    assert stock.sh("builder", f"findmnt -n -o FSTYPE {TMPFS}") == "tmpfs"
    assert stock.sh("builder", f"ls -A {TMPFS}") == ""
    assert int(stock.sh("builder", DISTCCD_LISTENING)) == 0
    for worker in stock.workers:
        listening = settled(stock, worker, "ss -Hltn 'sport = :3632' | awk '{print $4}'", f"{stock.address(worker)}:3632")
        assert listening == f"{stock.address(worker)}:3632", listening
    run, results = stock.validation()
    assert run.returncode == 0 and " 0 FAIL" in run.stderr, run.stderr[-6000:]
    again = ok(stock.pyinfra("mode_switch", json_output=True))
    assert again.totals["success"] == 0 and again.totals["error"] == 0, again.changed_operations()


def test_k3s_mode_stops_distccd_and_brings_the_pods_back(stock):
    ok(stock.pyinfra("k3s_mode"))
    assert_k3s_mode(stock)


def test_k3s_mode_survives_a_reboot(stock):
    stock.reboot()
    assert_k3s_mode(stock)
    again = ok(stock.pyinfra("k3s_mode", json_output=True))
    assert again.totals["success"] == 0 and again.totals["error"] == 0, again.changed_operations()
