"""DISTCC BUILD MODE from a freshly created lab: a dry run first
(changes nothing, predicts what the real run changes), then the real switch,
validation and the smoke test, then a second switch that changes nothing."""

import pytest

from tests.lab.harness import by_role, cluster_digest, deploy, docker_host, pyinfra, recreate_lab


@pytest.fixture(scope="module")
def nodes():
    return recreate_lab()


@pytest.fixture(scope="module")
def dry_plan(nodes):
    before = cluster_digest()
    run = pyinfra("--dry", "deploys/mode_switch.py")
    assert run.returncode == 0, run.stderr[-3000:]
    after = cluster_digest()
    return before, after, run


def test_dry_run_changes_nothing(dry_plan):
    before, after, _ = dry_plan
    assert before == after


def test_dry_run_plans_changes_on_every_host(dry_plan, nodes):
    _, _, run = dry_plan
    planned = {op["name"]: op["hosts_with_change"] for op in run.json["plan"]}
    assert set(planned["mode switch | k3s stopped | Stop k3s and its pods, disable its units"]) == {n.fqdn for n in nodes}
    workers = {n.fqdn for n in by_role(nodes, "worker")}
    assert set(planned["mode switch | distcc installed | Install distcc"]) == workers


def test_dry_diff_shows_the_override_it_would_create(nodes):
    run = pyinfra("--dry", "--diff", "deploys/mode_switch.py", json_output=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Will create /etc/systemd/system/distcc.service.d/override.conf" in run.output
    assert "+ ExecStart=/usr/bin/distccd --daemon --no-detach" in run.output


@pytest.fixture(scope="module")
def switched(dry_plan):
    run = deploy("mode_switch")
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_real_run_changes_only_what_the_dry_run_planned(dry_plan, switched):
    _, _, dry = dry_plan
    planned = {
        (op["name"], host)
        for op in dry.json["plan"]
        for host in op["hosts_with_change"] + op["hosts_with_conditional_change"]
    }
    changed = {(op["name"], host) for op in switched.json["results"]["operations"] for host in op["success"]}
    assert changed and changed <= planned


def test_switch_ends_in_build_mode(switched, nodes):
    for node in nodes:
        host = docker_host(node)
        if node.role == "builder":
            assert not host.service("k3s").is_running
            assert not host.service("distcc").is_running
            assert host.mount_point("/tmp/kernel-build").filesystem == "tmpfs"
        else:
            assert not host.service("k3s-agent").is_running
            assert host.service("distcc").is_running
            assert host.socket(f"tcp://{node.address}:3632").is_listening
            assert host.process.get(comm="distccd", ppid="1").user == "distccd"


def test_validation_and_smoke_test_pass(switched):
    check = deploy("cluster_distcc_validate", json_output=False)
    assert check.returncode == 0, check.stderr[-3000:]
    assert "0 FAIL" in check.stderr
    smoke = deploy("cluster_distcc_smoketest", json_output=False)
    assert smoke.returncode == 0, smoke.stderr[-3000:]
    assert "PASS" in smoke.stderr and "FAIL" not in smoke.stderr


def test_second_switch_changes_nothing(switched):
    again = deploy("mode_switch")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.totals["success"] == 0 and again.totals["error"] == 0, again.changed_operations()
