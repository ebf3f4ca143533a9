"""What the way into build mode says of each pod, and how the way back
reads the nodes, from facts captured on the lab's k3s stand-in (lab/image:
pods that exit on SIGTERM or ignore it, a server that lists its nodes)."""

from __future__ import annotations

import json
from pathlib import Path

from facts.k3s import parse_nodes, parse_pod_stops, parse_pods, pod_names
from operations.k3s import pod_outcomes

FACTS = Path(__file__).parent / "facts"


def captured(path: str) -> list[str]:
    return json.loads((FACTS / f"{path}.json").read_text())["output"]


def test_a_pod_that_ignores_sigterm_is_named_as_killed_after_the_grace():
    lines = pod_outcomes(parse_pod_stops(captured("k3s.PodStopReport/one_killed")), 3)
    assert lines == [
        "pod default/lab-app-1 stopped in time, in 0 s (exit 0)",
        "pod kube-system/lab-stubborn killed after the 3 s grace (exit 137)",
    ]


def test_pods_are_named_namespace_slash_name_from_k3s_crictl():
    assert pod_names(parse_pods(captured("k3s.K3sPods/running"))) == ["default/lab-app-1", "default/lab-app-2"]
    assert pod_names(parse_pods(captured("k3s.K3sPods/no_pods"))) == []


def test_pods_that_cannot_be_listed_say_why_in_one_short_line():
    pods = parse_pods(captured("k3s.K3sPods/containerd_gone"))
    assert pods["containers"] == []
    assert pods["unlisted"].endswith("connect: no such file or directory")
    assert len(pods["unlisted"]) <= 55
    report = {"pods": {}, "unlisted": pods["unlisted"]}
    assert pod_outcomes(report, 30) == ["pods not stopped gracefully: k3s-killall.sh kills them",
                                        f"k3s crictl: {pods['unlisted']}"]


def test_a_node_whose_agent_stopped_is_not_ready_in_the_servers_api():
    nodes = parse_nodes(captured("k3s.K3sNodes/server_one_not_ready"))
    assert nodes["answered"] and nodes["ready"] == {"builder": True, "worker1": True, "worker2": False}


def test_an_agent_has_no_api_to_ask():
    assert parse_nodes(captured("k3s.K3sNodes/agent")) == {"answered": False, "ready": {}, "error": None}


def test_each_pod_line_fits_100_columns_on_a_16_worker_lab():
    prefix = "    [worker16.distcc.internal] "
    report = parse_pod_stops(captured("k3s.PodStopReport/one_killed"))
    unlisted = {"pods": {}, "unlisted": parse_pods(captured("k3s.K3sPods/containerd_gone"))["unlisted"]}
    lines = pod_outcomes(report, 30) + pod_outcomes(unlisted, 30)
    assert len(lines) == 4 and all(len(prefix + line) <= 100 for line in lines), lines
