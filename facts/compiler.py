"""Facts about the host's C compiler: what distcc sends must be compiled by
an identical gcc on every worker, or objects are silently wrong."""

from __future__ import annotations

from typing import TypedDict

from facts._parsed import ParsedFact


class Identity(TypedDict):
    gcc_version: str | None
    gcc_machine: str | None
    dpkg_architecture: str | None


def parse_identity(lines: list[str]) -> Identity:
    values: dict[str, str | None] = {"version": None, "machine": None, "arch": None}
    for line in lines:
        key, _, value = line.strip().partition(" ")
        if key in values:
            values[key] = value.strip() or None
    return Identity(
        gcc_version=values["version"], gcc_machine=values["machine"], dpkg_architecture=values["arch"]
    )


class CompilerIdentity(ParsedFact[Identity]):
    """
    `gcc -dumpfullversion`, `gcc -dumpmachine` and `dpkg --print-architecture`
    (the userland's architecture, which is what matters: a 32-bit Raspberry Pi
    OS on a CM4 runs a 64-bit kernel, so `uname -m` would mislead).

    .. code:: python

        {"gcc_version": "12.2.0", "gcc_machine": "aarch64-linux-gnu",
         "dpkg_architecture": "arm64"}

    None for anything that is not installed.
    """

    command = (
        'printf "version %s\\n" "$(gcc -dumpfullversion 2>/dev/null)"; '
        'printf "machine %s\\n" "$(gcc -dumpmachine 2>/dev/null)"; '
        'printf "arch %s\\n" "$(dpkg --print-architecture 2>/dev/null)"'
    )

    parse = staticmethod(parse_identity)
