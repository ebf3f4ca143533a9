"""A cluster that runs real workloads: pods stopped the way Kubernetes stops
them, a k3s server named before build mode takes the API down, and a way
back that starts every server together and says when each node is Ready.

The lab's k3s stand-in (lab/image) models what matters here: pods whose
workload exits cleanly on SIGTERM (and records it) or ignores it, a
`k3s crictl` that stops containers with a grace period, an agent unit of
Type=exec, servers that are ready only once a quorum of them runs, and a
`k3s kubectl get nodes` that answers on a server. Grace periods are a few
seconds, and the pod that ignores SIGTERM runs only in the test that needs
it."""

from __future__ import annotations

import re

import pytest

from lab import docker_lab
from tests.lab.harness import Run, by_role, deploy, docker_host, pyinfra, running_lab, sh

PODS_FILE = "/etc/rancher/k3s/lab-pods"
PEERS_FILE = "/etc/rancher/k3s/lab-peers"
SETTLE_FILE = "/etc/rancher/k3s/lab-settle"
POD_LOG = "/var/log/lab-pods"


def ok(run: Run) -> Run:
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    return run


def restart_k3s(node: docker_lab.Node) -> None:
    """k3s killed and started again, so that its pods are made anew from
    the pods file."""
    unit = docker_lab.K3S_UNIT_FOR_ROLE[node.role]
    sh(node.container, f"/usr/local/bin/k3s-killall.sh >/dev/null 2>&1; systemctl enable --quiet {unit}; "
                       f"systemctl start {unit}")


@pytest.fixture(scope="module")
def nodes(lab):
    """The lab in k3s mode, with its pods."""
    ok(deploy("k3s_mode", data={"distcc_discard_tmpfs": True}, json_output=False))
    return running_lab()


@pytest.fixture()
def stubborn_pod(nodes):
    """worker1 runs a pod that exits cleanly on SIGTERM and one that ignores
    it; put back to the lab's two well-behaved pods afterwards."""
    worker = by_role(nodes, "worker")[0]
    sh(worker.container, f"printf 'default lab-app-1 exit\\nkube-system lab-stubborn ignore\\n' > {PODS_FILE}; "
                         f"rm -f {POD_LOG}/*")
    restart_k3s(worker)
    yield worker
    sh(worker.container, f"rm -f {PODS_FILE} {POD_LOG}/*")
    ok(deploy("k3s_mode", data={"distcc_discard_tmpfs": True}, json_output=False))
    restart_k3s(worker)


def test_dry_run_names_the_pods_that_would_stop_and_the_server(nodes, stubborn_pod):
    builder = by_role(nodes, "builder")[0]
    run = ok(pyinfra("--dry", "deploys/mode_switch.py", json_output=False, data={"distcc_pod_grace": 3}))
    for node in nodes:
        if node.role in ("builder", "worker"):
            assert f"[{node.name}] will stop pod default/lab-app-1 (SIGTERM, then SIGKILL after 3 s)" in run.stderr
    assert f"[{stubborn_pod.name}] will stop pod kube-system/lab-stubborn" in run.stderr
    assert f"[{builder.name}] runs a k3s server (k3s): until k3s mode the cluster's API is down" in run.stderr
    assert "runs a k3s server" not in "\n".join(
        line for line in run.stderr.splitlines() if line.lstrip().startswith(f"[{stubborn_pod.name}]")
    )
    # Nothing stopped: the pods still run.
    assert docker_host(stubborn_pod).service("k3s-agent").is_running
    assert sh(stubborn_pod.container, "k3s crictl ps -q | wc -l").strip() == "2"


def test_pods_get_sigterm_and_the_grace_period_before_sigkill(nodes, stubborn_pod):
    """The pod that handles SIGTERM records a clean shutdown and is named as
    stopped in time; the one that ignores it is killed when the 3 s grace
    runs out, and named. k3s-killall.sh alone (kill -9) gives neither."""
    run = ok(deploy("mode_switch", json_output=False, data={"distcc_pod_grace": 3}))
    prefix = f"[{stubborn_pod.name}] "
    assert re.search(re.escape(prefix) + r"pod default/lab-app-1 stopped in time, in [0-2] s \(exit 0\)", run.stderr)
    assert f"{prefix}pod kube-system/lab-stubborn killed after the 3 s grace (exit 137)" in run.stderr
    log = sh(stubborn_pod.container, f"cat {POD_LOG}/default_lab-app-1.log")
    assert log == "SIGTERM: clean shutdown\n"
    assert sh(stubborn_pod.container, f"cat {POD_LOG}/kube-system_lab-stubborn.log 2>/dev/null || true") == ""
    # And then nothing of k3s is left, as before.
    left = "ps -eo comm= | grep -cE '^(k3s|k3s-server|k3s-agent|containerd-shim|pod-workload|pause)$' || true"
    assert sh(stubborn_pod.container, left).strip() == "0"


def test_no_pod_no_extra_step(nodes):
    """In build mode no pod runs: the switch stops nothing and runs no crictl."""
    ok(deploy("mode_switch", json_output=False))
    run = ok(deploy("mode_switch", json_output=False))
    assert "] pod " not in run.stderr and "will stop" not in run.stderr


@pytest.fixture()
def two_servers(nodes):
    """worker1 made a second k3s server beside the builder's (embedded etcd
    of two: each is ready only when both run), in build mode; put back to
    an agent afterwards, in k3s mode."""
    ok(deploy("mode_switch", json_output=False))
    builder, worker = by_role(nodes, "builder")[0], by_role(nodes, "worker")[0]
    address = {n.container: docker_lab.static_address(n) for n in nodes}
    sh(worker.container, "mv /etc/systemd/system/k3s-agent.service /root/k3s-agent.service.lab && "
                         "install -m 644 /usr/local/share/lab/k3s.service /etc/systemd/system/k3s.service && "
                         "systemctl daemon-reload && cp /dev/null /etc/rancher/k3s/lab-nodes")
    sh(worker.container, f"echo {address[builder.container]} > {PEERS_FILE}")
    sh(builder.container, f"echo {address[worker.container]} > {PEERS_FILE}")
    lab_nodes = sh(builder.container, "cat /etc/rancher/k3s/lab-nodes")
    sh(worker.container, f"printf '%s' '{lab_nodes}' > /etc/rancher/k3s/lab-nodes")
    yield builder, worker
    sh(builder.container, f"rm -f {PEERS_FILE}")
    sh(worker.container, f"rm -f {PEERS_FILE} /etc/rancher/k3s/lab-nodes /etc/rancher/k3s/k3s.yaml; "
                         "systemctl disable --quiet --now k3s.service; /usr/local/bin/k3s-killall.sh >/dev/null 2>&1; "
                         "rm -f /etc/systemd/system/k3s.service; "
                         "mv /root/k3s-agent.service.lab /etc/systemd/system/k3s-agent.service; "
                         "systemctl daemon-reload; systemctl enable --quiet --now k3s-agent.service")
    restart_k3s(builder)


def test_servers_start_together_at_parallel_1_and_every_node_is_reported_ready(nodes, two_servers):
    """With two servers, a start that waited for the first would never end
    (its quorum needs the second, which --parallel 1 starts only after it).
    The way back starts both, then waits, and names each node's time."""
    builder, worker = two_servers
    run = pyinfra("--parallel", "1", "deploys/k3s_mode.py", json_output=False, timeout=240,
                  data={"distcc_discard_tmpfs": True})
    ok(run)
    reporter = re.findall(r"\[(\S+)\] node (\S+) Ready after (\d+) s", run.stderr)
    assert {node for _, node, _ in reporter} == {n.hostname for n in nodes if n.role in ("builder", "worker")}
    assert len({host for host, _, _ in reporter}) == 1  # one server reports
    for node in (builder, worker):
        assert docker_host(node).service("k3s").is_running
    assert f"[{builder.name}] runs a k3s server" not in run.stderr  # the warning is build mode's


def test_a_node_that_does_not_come_back_in_time_is_named_with_the_command_to_look(nodes):
    ok(deploy("mode_switch", json_output=False))
    late = by_role(nodes, "worker")[-1]
    sh(late.container, f"echo 3600 > {SETTLE_FILE}")
    try:
        run = deploy("k3s_mode", json_output=False, data={"distcc_k3s_timeout": 12, "distcc_discard_tmpfs": True})
        assert run.returncode != 0
        assert f"k3s nodes {late.hostname} ({late.name}): not Ready after" in run.words
        assert "(setting distcc_k3s_timeout)" in run.words
        assert "sudo k3s kubectl describe node NAME" in run.words
        # An agent's unit is Type=exec: active, although the node is not Ready.
        assert docker_host(late).service("k3s-agent").is_running
    finally:
        sh(late.container, f"rm -f {SETTLE_FILE}")
        restart_k3s(late)
    ok(deploy("k3s_mode", json_output=False, data={"distcc_discard_tmpfs": True}))
