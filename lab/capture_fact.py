"""Capture a fact fixture from a real lab host.

    python -m lab.capture_fact [--user USER] CONTAINER MODULE.CLASS CASE 'WHERE AND IN WHAT STATE' ['{"kwarg": ...}']
    python -m lab.capture_fact --inline [--user USER] CONTAINER MODULE.CLASS - 'WHERE AND IN WHAT STATE' ['{"kwarg": ...}']

runs the fact's own command in the container (as root, as pyinfra's sudo
does; as USER with --user, as a fact read without sudo), parses the output
with the fact's own process(), and writes tests/unit/facts/MODULE.CLASS/CASE.json
in the shape tests/unit/test_facts.py reads. Put the host in the state first;
the fixture says which it was. With --inline it writes nothing and prints
an operation fixture's capture of its own (a "facts_from" entry of
tests/unit/operations/MODULE.OP/CASE.json: captured_from, kwargs, output
and the command's sha256) and, on stderr, the fact's value for "facts".
"""

from __future__ import annotations

import hashlib
import importlib
import json
import subprocess
import sys
from pathlib import Path

from pyinfra.api import StringCommand

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "unit" / "facts"


def fact_class(fact_path: str) -> type:
    """MODULE.CLASS: ours (facts/MODULE.py), else pyinfra's own (files.FindInFile)."""
    module, _, name = fact_path.partition(".")
    try:
        return getattr(importlib.import_module(f"facts.{module}"), name)
    except (ImportError, AttributeError):
        return getattr(importlib.import_module(f"pyinfra.facts.{module}"), name)


def fact_command(fact_path: str, kwargs: dict) -> str:
    """The command the fact sends for these arguments, as the shell gets it."""
    return _command_of(fact_class(fact_path)(), kwargs)


def _command_of(fact, kwargs: dict) -> str:
    # The same instance must then process the output: files.FindInFile's
    # command() remembers the marker its process() looks for.
    command = fact.command(**kwargs) if callable(fact.command) else fact.command
    return command.get_raw_value() if isinstance(command, StringCommand) else str(command)


def command_sha256(command: str) -> str:
    """What a fixture records of the command that captured it ("command_sha256"),
    so that a unit test fails when the code sends another command."""
    return hashlib.sha256(command.encode()).hexdigest()


def run_fact(container: str, fact_path: str, kwargs: dict, user: str = "") -> tuple[str, list[str], object]:
    """The fact's command run in the container: the command, its output lines, and the fact's value."""
    fact = fact_class(fact_path)()
    raw = _command_of(fact, kwargs)
    as_user = ["-u", user] if user else []
    proc = subprocess.run(["docker", "exec", "-i", *as_user, container, "sh", "-c", raw], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{fact_path} exited {proc.returncode} on {container}: {proc.stderr.strip()}")
    output = proc.stdout.splitlines()
    return raw, output, fact.process(output) if output else fact.default()


def capture(container: str, fact_path: str, case: str, captured_from: str, kwargs: dict, user: str = "") -> dict:
    raw, output, value = run_fact(container, fact_path, kwargs, user)
    return write_fixture(fact_path, case, kwargs, raw, output, value, captured_from)


def capture_inline(container: str, fact_path: str, captured_from: str, kwargs: dict, user: str = "") -> dict:
    """An operation fixture's own capture (its "facts_from" entry), with the fact's value."""
    raw, output, value = run_fact(container, fact_path, kwargs, user)
    entry = {"captured_from": captured_from, "kwargs": kwargs, "output": output, "command_sha256": command_sha256(raw)}
    return {"entry": entry, "fact": value}


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
    user, inline = "", argv[:1] == ["--inline"]
    argv = argv[1:] if inline else argv
    if argv[:1] == ["--user"] and len(argv) > 1:
        user, argv = argv[1], argv[2:]
    if len(argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    container, fact_path, case, captured_from = argv[:4]
    kwargs = json.loads(argv[4]) if len(argv) == 5 else {}
    if inline:
        captured = capture_inline(container, fact_path, captured_from, kwargs, user)
        print(json.dumps(captured["fact"], indent=2), file=sys.stderr)
        print(json.dumps(captured["entry"], indent=4))
        return 0
    print(json.dumps(capture(container, fact_path, case, captured_from, kwargs, user)["fact"], indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main(sys.argv[1:]))
