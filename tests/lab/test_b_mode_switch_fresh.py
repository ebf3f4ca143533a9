"""DISTCC BUILD MODE from a freshly created lab: a dry run first
(changes nothing, predicts what the real run changes but for what distcc's
install does itself), then the real switch, validation and the smoke test,
then a second switch that changes nothing, and from k3s mode a dry run that
predicts the switch exactly."""

import pytest

from tests.lab.harness import Run, by_role, cluster_digest, deploy, docker_host, ok, pyinfra, recreate_lab


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


def planned_changes(dry: Run) -> set[tuple[str, str]]:
    """(operation, host) for each change a --dry run plans, conditional or not."""
    return {
        (op["name"], host)
        for op in dry.json["plan"]
        for host in op["hosts_with_change"] + op["hosts_with_conditional_change"]
    }


def changes(run: Run) -> set[tuple[str, str]]:
    return {(op["name"], host) for op in run.json["results"]["operations"] for host in op["success"]}


# What a dry run on hosts without distcc plans and the real run then finds
# done: the dry run reads every host before anything changes, and these
# operations come after the install, whose maintainer scripts do their work.
# distcc's postinst runs update-distcc-symlinks, which makes a worker's
# whitelist links; on trixie the install masks distcc.service while it runs
# (held_units), so the builder's unit ends disabled (on bookworm the init
# script's rc links enable it, and the disable is due). The dry run cannot
# tell what a postinst will do, so it plans the change: planning less would
# hide one the real run can make (distcc_compilers naming fewer compilers
# than the postinst links).
WHITELIST = "mode switch | distcc installed | Whitelist the installed compilers in /usr/lib/distcc"
BUILDER_DISABLE = "mode switch | builder client only | distccd stopped and disabled on the builder"


def made_by_the_install(nodes) -> set[tuple[str, str]]:
    made = {(WHITELIST, n.fqdn) for n in by_role(nodes, "worker")}
    return made | {(BUILDER_DISABLE, n.fqdn) for n in by_role(nodes, "builder") if n.suite != "bookworm"}


def test_real_run_changes_only_what_the_dry_run_planned(dry_plan, switched, nodes):
    """Every change the real run makes was planned, and every planned change
    is made but those the install makes itself (made_by_the_install)."""
    _, _, dry = dry_plan
    assert made_by_the_install(nodes) <= planned_changes(dry)
    assert changes(switched) == planned_changes(dry) - made_by_the_install(nodes)


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


def test_from_k3s_mode_the_dry_run_predicts_every_change(switched):
    """With distcc installed, no maintainer script runs mid-switch: from k3s
    mode, the real switch changes exactly what the dry run planned, operation
    by operation and host by host."""
    ok(deploy("k3s_mode", data={"distcc_discard_tmpfs": True}))
    dry = ok(pyinfra("--dry", "deploys/mode_switch.py"))
    real = ok(deploy("mode_switch"))
    assert changes(real) and changes(real) == planned_changes(dry)
