"""Capture a fact fixture from a real lab host.

    python -m lab.capture_fact [--user USER] CONTAINER MODULE.CLASS CASE 'WHERE AND IN WHAT STATE' ['{"kwarg": ...}']

runs the fact's own command in the container (as root, as pyinfra's sudo
does; as USER with --user, as a fact read without sudo), parses the output
with the fact's own process(), and writes tests/unit/facts/MODULE.CLASS/CASE.json
in the shape tests/unit/test_facts.py reads. Put the host in the state first;
the fixture says which it was.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

from pyinfra.api import StringCommand

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "unit" / "facts"


def capture(container: str, fact_path: str, case: str, captured_from: str, kwargs: dict, user: str = "") -> dict:
    module, _, name = fact_path.partition(".")
    fact = getattr(importlib.import_module(f"facts.{module}"), name)()
    command = fact.command(**kwargs) if callable(fact.command) else fact.command
    raw = command.get_raw_value() if isinstance(command, StringCommand) else str(command)
    as_user = ["-u", user] if user else []
    proc = subprocess.run(["docker", "exec", "-i", *as_user, container, "sh", "-c", raw], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{fact_path} exited {proc.returncode} on {container}: {proc.stderr.strip()}")
    output = proc.stdout.splitlines()
    value = fact.process(output) if output else fact.default()
    return write_fixture(fact_path, case, kwargs, raw, output, value, captured_from)


def write_fixture(fact_path: str, case: str, kwargs: dict, command: str, output: list[str], value, captured_from: str) -> dict:
    """tests/unit/facts/MODULE.CLASS/CASE.json in the shape tests/unit/test_facts.py reads (also used by
    lab/capture_surveys.py --fact-fixtures, which captures through pyinfra)."""
    fixture = {"kwargs": kwargs, "command": command, "output": output, "fact": value, "captured_from": captured_from}
    if not kwargs:
        del fixture["kwargs"]
    path = FIXTURES / fact_path / f"{case}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fixture, indent=2, ensure_ascii=True) + "\n")
    return fixture


def main(argv: list[str]) -> int:
    user = ""
    if argv[:1] == ["--user"] and len(argv) > 1:
        user, argv = argv[1], argv[2:]
    if len(argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    container, fact_path, case, captured_from = argv[:4]
    kwargs = json.loads(argv[4]) if len(argv) == 5 else {}
    print(json.dumps(capture(container, fact_path, case, captured_from, kwargs, user)["fact"], indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main(sys.argv[1:]))
