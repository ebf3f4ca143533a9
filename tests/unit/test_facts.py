"""The facts against output captured from real lab hosts.

Each fixture is tests/unit/facts/<module.Class>/<case>.json, in pyinfra's own
fact-fixture shape: the fact's arguments ("arg", "args" or "kwargs"), the exact
"command" it sends, the "output" lines one lab container printed for it, the
"fact" value expected from them, and "captured_from" (which host, in which
state). No host is needed here.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from pathlib import Path

import pytest
from pyinfra.api import FactBase, ShortFactBase, StringCommand
from pyinfra.api.facts import _make_command

import facts

FIXTURES = Path(__file__).parent / "facts"
CASES = sorted(FIXTURES.glob("*/*.json"))


def _fact_class(directory: str) -> type:
    module, _, name = directory.partition(".")
    return getattr(importlib.import_module(f"facts.{module}"), name)


def _command_arguments(fixture: dict) -> tuple[list, dict]:
    if "arg" in fixture:
        return [fixture["arg"]], {}
    return list(fixture.get("args", [])), dict(fixture.get("kwargs", {}))


def _raw(command: object) -> str:
    return command.get_raw_value() if isinstance(command, StringCommand) else str(command)


def _stale(path: Path, fixture: dict) -> str:
    """What to do when a fixture's command is not the one the fact sends now."""
    name, case = path.parent.name, path.stem
    if name == "survey.HostSurvey":
        again = "python3 -m lab.capture_surveys --fact-fixtures"
    else:
        kwargs = fixture.get("kwargs", {})
        again = f"python -m lab.capture_fact CONTAINER {name} {case} 'WHERE AND IN WHAT STATE'" + (
            f" '{json.dumps(kwargs)}'" if kwargs else ""
        )
    return (
        f"tests/unit/facts/{name}/{case}.json was captured by another command than {name} sends now; re-capture "
        f"it with a lab host in the state its captured_from names: {again} (docs/testing.md)"
    )


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fact_from_captured_output(path: Path) -> None:
    fixture = json.loads(path.read_text())
    fact_class = _fact_class(path.parent.name)
    short_fact = fact_class() if issubclass(fact_class, ShortFactBase) else None
    fact = fact_class.fact() if short_fact else fact_class()

    # The command as pyinfra builds it: the arguments bound to the command's
    # parameters by name (getcallargs), then passed as keywords.
    args, kwargs = _command_arguments(fixture)
    host_args = inspect.getcallargs(fact.command, *args, **kwargs) if callable(fact.command) and (args or kwargs) else {}
    command = _make_command(fact.command, host_args)
    assert _raw(command) == fixture["command"], _stale(path, fixture)

    # pyinfra calls process() only when the command printed something;
    # otherwise the host gets default().
    value = fact.process(fixture["output"]) if fixture["output"] else fact.default()
    if short_fact:
        value = short_fact.process_data(value)
    assert value == fixture["fact"]
    if not fixture["output"]:
        assert fact.process([]) == fixture["fact"]


def _declared_facts() -> list[str]:
    found = []
    for module_info in pkgutil.iter_modules(facts.__path__):
        if module_info.name.startswith("_"):  # helpers and the abstract base, no facts
            continue
        module = importlib.import_module(f"facts.{module_info.name}")
        for name, member in inspect.getmembers(module, inspect.isclass):
            if member.__module__ == module.__name__ and issubclass(member, (FactBase, ShortFactBase)):
                found.append(f"{module_info.name}.{name}")
    return sorted(found)


def test_every_fact_has_captured_fixtures() -> None:
    covered = {path.parent.name for path in CASES}
    assert [name for name in _declared_facts() if name not in covered] == []


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fixture_says_where_it_was_captured(path: Path) -> None:
    text = path.read_text()
    assert text.isascii()
    fixture = json.loads(text)
    assert fixture["captured_from"].strip()
    assert set(fixture) <= {"arg", "args", "kwargs", "command", "output", "fact", "captured_from"}


def test_an_emulated_nodes_processes_read_as_on_a_pi() -> None:
    """ps on a node under the lab's qemu-user shows the interpreter and the
    program's path before argv[0]; DistccProcesses gives distccd's own
    command line, as a Pi's ps shows it, so the reset judges that."""
    fixture = json.loads((FIXTURES / "distcc.DistccProcesses" / "emulated_lab_qemu.json").read_text())
    assert all("/qemu-aarch64 /usr/bin/distccd /usr/bin/distccd --daemon" in line for line in fixture["output"] if "distccd" in line)
    processes = _fact_class("distcc.DistccProcesses")().process(fixture["output"])["distccd"]
    assert processes and all(p["args"].startswith("/usr/bin/distccd --daemon --no-detach ") for p in processes)
