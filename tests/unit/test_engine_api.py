"""lab/engine_api.nodes() from the Docker Engine API: the lab's containers
read over a UNIX socket give the nodes the docker CLI gives, and every case
the API cannot answer falls back to the CLI. No Docker: a stand-in engine
on a socket in tmp_path replays answers captured from a real lab
(tests/unit/engine_api/, written by python -m lab.capture_engine_api)."""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
from dataclasses import asdict
from pathlib import Path

import pytest

from lab import engine_api

FIXTURES = Path(__file__).parent / "engine_api"
CASES = sorted(FIXTURES.glob("*.json"))


class ReplayedEngine(socketserver.UnixStreamServer):
    """Answers GET requests from recorded {path: answer}; any other path 404,
    every path `status` when it is set."""

    def __init__(self, socket_path: str, answers: dict, status: int = 200) -> None:
        self.answers, self.status, self.requested = answers, status, []
        super().__init__(socket_path, ReplayedEngineHandler)


class ReplayedEngineHandler(http.server.BaseHTTPRequestHandler):
    # Keep-alive, as the engine: nodes() sends all its requests on one connection.
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.requested.append(self.path)
        found = self.path in self.server.answers
        status = self.server.status if found else 404
        body = json.dumps(self.server.answers[self.path] if status == 200 else {"message": "no such thing"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:
        # The base class writes every request to stderr.
        pass


@pytest.fixture
def engine(tmp_path, monkeypatch):
    """Start a replayed engine for a fixture: engine(fixture, status=200)."""
    servers = []

    def start(fixture: dict, status: int = 200) -> ReplayedEngine:
        monkeypatch.setattr(engine_api, "PREFIX", fixture["prefix"])
        monkeypatch.setattr(engine_api, "NETWORK", fixture["prefix"])
        server = ReplayedEngine(str(tmp_path / "docker.sock"), fixture["answers"], status)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'docker.sock'}")
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def load(case: Path) -> dict:
    return json.loads(case.read_text())


def cli_answers(fixture: dict, monkeypatch) -> list[str]:
    """The docker CLI path, answering with the recorded inspections; the
    returned list records each time it was used."""
    used = []
    inspections = [answer for path, answer in fixture["answers"].items() if not path.startswith("/containers/json")]

    def from_cli() -> list[dict]:
        used.append("cli")
        return inspections

    monkeypatch.setattr(engine_api, "inspections_from_cli", from_cli)
    return used


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_the_engine_api_gives_the_nodes_the_docker_cli_gave(case, engine, monkeypatch):
    fixture = load(case)
    server = engine(fixture)
    used = cli_answers(fixture, monkeypatch)
    assert [asdict(n) for n in engine_api.nodes()] == fixture["nodes_from_docker_cli"]
    assert used == []
    # The same requests as at capture: the prefix's label filter, then one inspect per container.
    assert server.requested == list(fixture["answers"])


def test_the_captured_lab_has_a_stopped_node_without_an_address():
    nodes = load(FIXTURES / "invlab-worker2-stopped.json")["nodes_from_docker_cli"]
    assert [(n["container"], n["state"], n["address"]) for n in nodes] == [
        ("invlab-builder", "running", "172.31.245.2"),
        ("invlab-worker1", "running", "172.31.245.3"),
        ("invlab-worker2", "exited", None),
    ]


@pytest.mark.parametrize("status", [404, 500])
def test_an_error_answer_falls_back_to_the_docker_cli(status, engine, monkeypatch):
    fixture = load(CASES[0])
    engine(fixture, status=status)
    used = cli_answers(fixture, monkeypatch)
    assert [asdict(n) for n in engine_api.nodes()] == fixture["nodes_from_docker_cli"]
    assert used == ["cli"]


def test_a_missing_socket_falls_back_to_the_docker_cli(tmp_path, monkeypatch):
    fixture = load(CASES[0])
    monkeypatch.setattr(engine_api, "PREFIX", fixture["prefix"])
    monkeypatch.setattr(engine_api, "NETWORK", fixture["prefix"])
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    used = cli_answers(fixture, monkeypatch)
    assert [asdict(n) for n in engine_api.nodes()] == fixture["nodes_from_docker_cli"]
    assert used == ["cli"]


@pytest.fixture
def docker_env(tmp_path, monkeypatch):
    for key in ("DOCKER_HOST", "DOCKER_CONTEXT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    return monkeypatch


@pytest.mark.parametrize(
    ("settings", "config", "socket_path"),
    [
        ({}, None, "/var/run/docker.sock"),
        ({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}, None, "/run/user/1000/docker.sock"),
        # Another endpoint: only the CLI knows how to reach it.
        ({"DOCKER_HOST": "tcp://10.0.0.5:2376"}, None, None),
        ({"DOCKER_HOST": "ssh://pi@builder"}, None, None),
        ({"DOCKER_CONTEXT": "rootless"}, None, None),
        ({"DOCKER_CONTEXT": "default"}, None, "/var/run/docker.sock"),
        ({}, {"currentContext": "rootless"}, None),
        ({}, {"currentContext": "default", "auths": {}}, "/var/run/docker.sock"),
        # The CLI's order: DOCKER_HOST before any context.
        ({"DOCKER_HOST": "unix:///tmp/d.sock", "DOCKER_CONTEXT": "rootless"}, {"currentContext": "x"}, "/tmp/d.sock"),
    ],
)
def test_the_api_is_asked_only_where_the_docker_cli_would_go(docker_env, tmp_path, settings, config, socket_path):
    for key, value in settings.items():
        docker_env.setenv(key, value)
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
    assert engine_api.engine_socket() == socket_path


def test_another_endpoint_is_left_to_the_docker_cli(monkeypatch):
    fixture = load(CASES[0])
    monkeypatch.setattr(engine_api, "PREFIX", fixture["prefix"])
    monkeypatch.setattr(engine_api, "NETWORK", fixture["prefix"])
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.5:2376")

    def no_api(socket_path):
        raise AssertionError("the API was asked although DOCKER_HOST is tcp://")

    monkeypatch.setattr(engine_api, "inspections_from_engine_api", no_api)
    used = cli_answers(fixture, monkeypatch)
    assert [asdict(n) for n in engine_api.nodes()] == fixture["nodes_from_docker_cli"]
    assert used == ["cli"]
