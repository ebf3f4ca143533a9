"""Several facts read in one remote command, each parsed by its own fact.

pyinfra 3 runs one remote command per `host.get_fact` and caches nothing, and
a Pi pays for every process start: a no-change mode switch used to cost a
worker about 24 round trips. A bundle sends the facts' own commands in one
script, each in a marked section with its exit status, and hands each
section to that fact's own process()/default(), as pyinfra would.

Facts whose command text is identical (DistccProcesses and Cc1Processes are
both one `ps`) run once and are parsed from the same output, so they see the
same instant. A section that exited non-zero, or whose required command is
missing, is reported as not read, and the caller asks pyinfra for that fact
alone, which then behaves exactly as pyinfra does (fails the host, or
returns the fact's default).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from pyinfra.api import FactBase, StringCommand

MARK = "##bundle-part "
END = "##bundle-end "

# One part: a fact class and the keyword arguments it is called with.
Part = tuple[type[FactBase], dict[str, Any]]


def fact_path(cls: type[FactBase]) -> str:
    """A fact class's import path, e.g. "facts.systemd.UnitState" or
    "pyinfra.facts.deb.DebPackages": how a bundle names its parts, so that
    its arguments are plain data (logs, --json, captured fixtures)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def fact_class(path: str) -> type[FactBase]:
    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, FactBase)):
        raise TypeError(f"{path} is not a fact")
    return cls


class BundleParts(list):
    """FactBundle's `parts`: a list, shown short. pyinfra names a fact that
    failed with its arguments ("could not load fact: ... parts=..."), after
    the package's own words on the cause; the whole list ran to thousands
    of columns there."""

    def __str__(self) -> str:
        return f"<{len(self)} facts>"

    __repr__ = __str__


def as_arguments(parts: Sequence[Part]) -> list[list]:
    """FactBundle's `parts` argument for these parts."""
    return BundleParts([fact_path(cls), dict(kwargs)] for cls, kwargs in parts)


def part_command(cls: type[FactBase], kwargs: dict[str, Any]) -> StringCommand:
    """A fact's command for these arguments, as pyinfra builds it."""
    fact = cls()
    command = fact.command(**kwargs) if callable(fact.command) else fact.command
    command = command if isinstance(command, StringCommand) else StringCommand(str(command).strip())
    requires = fact.requires_command(**kwargs) if callable(fact.requires_command) else fact.requires_command
    if requires:
        # A missing binary is reported as a failed part (exit 127): pyinfra
        # then reads that fact alone and applies its own missing-command rule.
        return StringCommand("command -v", str(requires), ">/dev/null 2>&1 || exit 127;", command)
    return command


def distinct_commands(parts: Sequence[Part]) -> tuple[list[StringCommand], list[int]]:
    """The distinct commands of the parts, and for each part the index of its command."""
    commands: list[StringCommand] = []
    texts: dict[str, int] = {}
    index: list[int] = []
    for cls, kwargs in parts:
        command = part_command(cls, kwargs)
        text = command.get_raw_value()
        if text not in texts:
            texts[text] = len(commands)
            commands.append(command)
        index.append(texts[text])
    return commands, index


class FactBundle(FactBase[list]):
    """
    The raw output of several facts' commands, run in one script: for each
    distinct command, its exit status and its output lines. `parts` lists
    [fact path, kwargs] pairs (as_arguments()).

    .. code:: python

        [{"status": 0, "lines": ["ActiveState=active", ...]},
         {"status": 0, "lines": ["  333     1 distccd ..."]}]

    Parse a part with parse_part(); see facts.bundle's docstring.
    """

    def command(self, parts: Sequence[Sequence]) -> StringCommand:
        commands, _ = distinct_commands([(fact_class(path), kwargs) for path, kwargs in parts])
        bits: list[object] = []
        for number, command in enumerate(commands):
            # Each section in a subshell: an `exit` in one ends only that one.
            bits += [f"echo '{MARK}{number}'; (", command, f") 2>/dev/null; echo \"{END}{number} $?\";"]
        bits.append("true")
        return StringCommand(*bits)

    def process(self, output: list[str]) -> list[dict | None]:
        return parse_sections(output)

    @staticmethod
    def default() -> list[dict | None]:
        return []


def parse_sections(lines: list[str]) -> list[dict | None]:
    """The sections in command order; None for one that printed no mark."""
    sections: dict[int, dict] = {}
    current: list[str] | None = None
    for line in lines:
        if line.startswith(MARK) and line[len(MARK):].strip().isdigit():
            current = []
            sections[int(line[len(MARK):])] = {"status": None, "lines": current}
        elif line.startswith(END):
            number, _, status = line[len(END):].partition(" ")
            if number.isdigit() and int(number) in sections:
                sections[int(number)]["status"] = int(status) if status.strip().isdigit() else None
            current = None
        elif current is not None:
            current.append(line)
    return [sections.get(number) for number in range(max(sections, default=-1) + 1)]


NOT_READ = object()


def parse_part(cls: type[FactBase], section: dict | None) -> Any:
    """One part's value from its section, as pyinfra's get_fact would give
    it (process() of the lines, default() when there are none), or NOT_READ
    when the section is missing or its command failed."""
    if not section or section["status"] != 0:
        return NOT_READ
    fact = cls()
    return fact.process(section["lines"]) if section["lines"] else fact.default()
