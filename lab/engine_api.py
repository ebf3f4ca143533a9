"""The lab's nodes as Docker reports them now, from the Docker Engine API.

inventories/lab.py reads nodes() at the start of every pyinfra run: two docker
CLI processes cost about 0.1 s there, the same answers over the engine's
socket a few milliseconds. The docker CLI answers when the API cannot.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import urllib.parse
from pathlib import Path

from lab.containers import lab_containers
from lab.docker_cli import docker
from lab.settings import (
    ARCH_LABEL,
    FLAVOR_LABEL,
    LABEL,
    NETWORK,
    PREFIX,
    PREFIX_LABEL,
    SUITE_LABEL,
    USER_LABEL,
    LabError,
    Node,
    native_arch,
)

DEFAULT_ENGINE_SOCKET = "/var/run/docker.sock"
ENGINE_API_TIMEOUT = 30


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a UNIX socket, as the docker CLI talks to its engine."""

    def __init__(self, socket_path: str, timeout: float = ENGINE_API_TIMEOUT) -> None:
        # "localhost" only fills the Host header; the engine does not read it.
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def engine_socket() -> str | None:
    """The UNIX socket of the engine the docker CLI would use, or None when
    the CLI would go elsewhere (DOCKER_HOST tcp:// or ssh://, a docker context
    other than the default), so that the API is only asked where the CLI would
    ask. The CLI's order: DOCKER_HOST, DOCKER_CONTEXT, config.json's
    currentContext."""
    host = os.environ.get("DOCKER_HOST", "").strip()
    if host:
        return host.removeprefix("unix://") if host.startswith("unix://") else None
    context = os.environ.get("DOCKER_CONTEXT", "").strip()
    if not context:
        config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
        try:
            context = str(json.loads(config.read_text()).get("currentContext") or "")
        except (OSError, ValueError, AttributeError):
            context = ""
    return DEFAULT_ENGINE_SOCKET if context in ("", "default") else None


def _engine_get(connection: http.client.HTTPConnection, path: str):
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise LabError(f"Docker Engine API GET {path}: HTTP {response.status} {body[:200]!r}")
    return json.loads(body)


def inspections_from_engine_api(socket_path: str) -> list[dict]:
    """What `docker container inspect` says of each lab container, in the
    order `docker ps` lists them (newest first), read over the engine's
    socket with one connection. Raises OSError, http.client.HTTPException,
    ValueError or LabError when the engine cannot answer."""
    # The filter exactly as `docker ps --filter label=K=V` sends it.
    filters = urllib.parse.quote(json.dumps({"label": {f"{PREFIX_LABEL}={PREFIX}": True}}))
    connection = UnixHTTPConnection(socket_path)
    try:
        listed = _engine_get(connection, f"/containers/json?all=1&filters={filters}")
        return [_engine_get(connection, f"/containers/{urllib.parse.quote(c['Id'])}/json") for c in listed]
    finally:
        connection.close()


def inspections_from_cli() -> list[dict]:
    """The same as inspections_from_engine_api(), through the docker CLI."""
    names = lab_containers()
    return json.loads(docker("container", "inspect", *names)) if names else []


def nodes_from_inspections(infos: list[dict]) -> list[Node]:
    """Nodes from `docker container inspect` answers, builder first."""
    found = []
    for info in infos:
        nets = info["NetworkSettings"]["Networks"]
        address = nets.get(NETWORK, {}).get("IPAddress") or None
        found.append(
            Node(
                container=info["Name"].lstrip("/"),
                id=info["Id"],
                hostname=info["Config"]["Hostname"],
                role=info["Config"]["Labels"].get(LABEL, "?"),
                address=address,
                state=info["State"]["Status"],
                # Containers made before the label existed run the native image.
                arch=info["Config"]["Labels"].get(ARCH_LABEL) or native_arch(),
                # ... and are of the fqdn flavor, reached as pi.
                flavor=info["Config"]["Labels"].get(FLAVOR_LABEL) or "fqdn",
                user=info["Config"]["Labels"].get(USER_LABEL) or "pi",
                suite=info["Config"]["Labels"].get(SUITE_LABEL) or "bookworm",
            )
        )
    order = {"builder": 0, "worker": 1}
    return sorted(found, key=lambda n: (order.get(n.role, 2), len(n.hostname), n.hostname))


def nodes() -> list[Node]:
    """The lab's nodes as Docker reports them now, builder first: from the
    engine's API, else (no socket, no permission, another endpoint, an error
    answer) from the docker CLI."""
    socket_path = engine_socket()
    if socket_path is not None:
        try:
            return nodes_from_inspections(inspections_from_engine_api(socket_path))
        except (OSError, http.client.HTTPException, ValueError, LabError):
            pass
    return nodes_from_inspections(inspections_from_cli())
