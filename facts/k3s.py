"""Facts about k3s beyond its units (facts/systemd.py's K3sUnits): the pods,
as k3s's own container runtime lists them, and the nodes, as a server's API
sees them. Their shell is in templates/k3s-*-listed.sh.j2."""

from __future__ import annotations

import json
import re
from typing import TypedDict

from pyinfra.api import QuoteString, StringCommand

from facts._parsed import ParsedFact
from facts._templates import render_script

# Where k3s's install.sh puts the k3s binary: /usr/local/bin, or /opt/bin
# when /usr/local is read-only (as for k3s-killall.sh, facts/systemd.py).
K3S_PATHS = ("/usr/local/bin/k3s", "/opt/bin/k3s")


def json_object(lines: list[str]) -> dict | None:
    """The JSON object in these lines (from the first line that opens one to
    the last that closes one), or None when there is none to parse."""
    start = next((i for i, line in enumerate(lines) if line.startswith("{")), None)
    end = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("}")), None)
    if start is None or end is None or end < start:
        return None
    try:
        value = json.loads("\n".join(lines[start:end + 1]))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class PodContainer(TypedDict):
    id: str
    namespace: str
    pod: str
    container: str


class Pods(TypedDict):
    containers: list[PodContainer]
    unlisted: str | None


def short_error(text: str, width: int = 55) -> str:
    """crictl's or kubectl's error line, short enough for one printed line:
    the message of a logrus line (time=... level=fatal msg="..."), and of a
    long message its end, where the cause is."""
    match = re.search(r'msg="(?P<msg>.*)"\s*$', text)
    message = match["msg"].replace('\\"', '"') if match else text.strip()
    message = message.rstrip('"')
    return message if len(message) <= width else "..." + message[-(width - 3):]


def parse_pods(lines: list[str]) -> Pods:
    unlisted = next((line.partition(" ")[2].strip() for line in lines if line.startswith("PodsUnlisted")), None)
    unlisted = short_error(unlisted) if unlisted is not None else None
    listed = json_object(lines) or {}
    containers = []
    for item in listed.get("containers") or []:
        labels = item.get("labels") or {}
        if item.get("state", "CONTAINER_RUNNING") != "CONTAINER_RUNNING":
            continue
        containers.append(
            PodContainer(
                id=str(item.get("id", "")),
                namespace=str(labels.get("io.kubernetes.pod.namespace", "")),
                pod=str(labels.get("io.kubernetes.pod.name", "")),
                container=str(labels.get("io.kubernetes.container.name") or (item.get("metadata") or {}).get("name", "")),
            )
        )
    if unlisted is None and not containers and lines and not listed:
        unlisted = "k3s crictl printed no container list"
    return Pods(containers=sorted(containers, key=lambda c: (c["namespace"], c["pod"], c["container"])), unlisted=unlisted)


def pod_names(pods: Pods) -> list[str]:
    """namespace/name of each pod that has a running container, once each."""
    return sorted({f"{c['namespace']}/{c['pod']}" for c in pods["containers"]})


class K3sPods(ParsedFact[Pods]):
    """
    The running containers of k3s's pods (`k3s crictl ps`, which asks the
    containerd that k3s started and that outlives `systemctl stop k3s`), with
    their pod's namespace and name; read only while a containerd shim (a
    pod) runs, so a node without pods runs no crictl. `unlisted` says why
    they could not be listed (no k3s binary, containerd gone).

    .. code:: python

        {"containers": [{"id": "f05b5dd6...", "namespace": "default",
                         "pod": "lab-app-1", "container": "workload"}],
         "unlisted": None}
    """

    command = render_script("k3s-pods-listed.sh.j2", {"k3s_paths": K3S_PATHS})

    parse = staticmethod(parse_pods)


class Nodes(TypedDict):
    answered: bool
    ready: dict[str, bool]
    error: str | None


def parse_nodes(lines: list[str]) -> Nodes:
    last = lines[-1].strip() if lines else ""
    if not last.startswith("ApiAnswered"):
        return Nodes(answered=False, ready={}, error=None)
    if last != "ApiAnswered yes":
        return Nodes(answered=False, ready={}, error=last.removeprefix("ApiAnswered no").strip() or None)
    ready = {}
    for item in (json_object(lines[:-1]) or {}).get("items") or []:
        name = (item.get("metadata") or {}).get("name")
        conditions = (item.get("status") or {}).get("conditions") or []
        if name:
            ready[str(name)] = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return Nodes(answered=True, ready=ready, error=None)


class K3sNodes(ParsedFact[Nodes]):
    """
    The nodes a k3s server's API lists, and whether each is Ready
    (`k3s kubectl get nodes`); asked only where a server's kubeconfig is
    (/etc/rancher/k3s/k3s.yaml). `answered` is False on an agent, and on a
    server whose API is not up yet (`error` then says what kubectl said).

    .. code:: python

        {"answered": True, "ready": {"builder": True, "worker1": False}, "error": None}
    """

    command = render_script("k3s-nodes-listed.sh.j2", {"k3s_paths": K3S_PATHS})

    parse = staticmethod(parse_nodes)


_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")


def parse_node_name(lines: list[str]) -> str | None:
    name = lines[0].strip() if lines else ""
    return name if _NODE_NAME.match(name) else None


class K3sNodeName(ParsedFact[str | None]):
    """
    The name this host has as a k3s node: its hostname, which k3s takes
    unless told otherwise (--node-name).

    .. code:: python

        "worker1"
    """

    command = "cat /proc/sys/kernel/hostname"
    parse = staticmethod(parse_node_name)


class StoppedContainer(TypedDict):
    exit: int | None
    seconds: int | None


class PodStops(TypedDict):
    pods: dict[str, list[StoppedContainer]]
    unlisted: str | None


_STOPPED = re.compile(r"^Stopped (?P<pod>\S+) (?P<exit>\d+|\?) (?P<seconds>\d+|\?)$")


def parse_pod_stops(lines: list[str]) -> PodStops:
    stops = PodStops(pods={}, unlisted=None)
    for line in lines:
        match = _STOPPED.match(line.strip())
        if match:
            stops["pods"].setdefault(match["pod"], []).append(
                StoppedContainer(
                    exit=int(match["exit"]) if match["exit"].isdigit() else None,
                    seconds=int(match["seconds"]) if match["seconds"].isdigit() else None,
                )
            )
        elif line.startswith("Unlisted "):
            stops["unlisted"] = line.partition(" ")[2].strip()
    return stops


class PodStopReport(ParsedFact[PodStops]):
    """
    What the last stop of k3s's pods did (templates/k3s-pods-stopped.sh.j2
    writes it): each pod's containers' exit status and the seconds their
    stop took (137: killed by SIGKILL when the grace period ran out).

    .. code:: python

        {"pods": {"default/lab-app-1": [{"exit": 0, "seconds": 0}],
                  "kube-system/stubborn": [{"exit": 137, "seconds": 5}]},
         "unlisted": None}
    """

    def command(self, path: str) -> StringCommand:
        return StringCommand("cat", QuoteString(path), "2>/dev/null;", "true")

    parse = staticmethod(parse_pod_stops)
