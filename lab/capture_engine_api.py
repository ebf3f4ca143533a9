"""Capture the Docker Engine API's answers about the running lab as a fixture.

    LAB_PREFIX=... python -m lab.capture_engine_api CASE 'WHICH LAB AND IN WHAT STATE'

asks the engine exactly what lab/engine_api.nodes() asks it (the same
requests, through the same code), records every answer by request path, and
writes tests/unit/engine_api/CASE.json with the nodes the docker CLI path
gives for the same lab, which tests/unit/test_engine_api.py expects the API
path to give from the recorded answers. It refuses to write when the two
paths disagree on the live lab.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "unit" / "engine_api"


def capture(case: str, captured_from: str) -> dict:
    from lab import engine_api

    socket_path = engine_api.engine_socket()
    if socket_path is None:
        raise SystemExit("the docker CLI does not talk to a local UNIX socket here (DOCKER_HOST or a docker context)")
    answers: dict[str, object] = {}
    engine_get = engine_api._engine_get

    def recording_get(connection, path):
        answers[path] = engine_get(connection, path)
        return answers[path]

    engine_api._engine_get = recording_get
    try:
        from_api = engine_api.nodes_from_inspections(engine_api.inspections_from_engine_api(socket_path))
    finally:
        engine_api._engine_get = engine_get
    from_cli = engine_api.nodes_from_inspections(engine_api.inspections_from_cli())
    if from_api != from_cli:
        raise SystemExit(f"the API path and the CLI path disagree:\nAPI {from_api}\nCLI {from_cli}")
    fixture = {
        "captured_from": captured_from,
        "prefix": engine_api.PREFIX,
        "answers": answers,
        "nodes_from_docker_cli": [asdict(node) for node in from_cli],
    }
    path = FIXTURES / f"{case}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fixture, indent=2, ensure_ascii=True) + "\n")
    return fixture


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    fixture = capture(*argv)
    print(json.dumps(fixture["nodes_from_docker_cli"], indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main(sys.argv[1:]))
