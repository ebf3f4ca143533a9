"""How a setting is declared and checked. A setting of this package is one
field of deploys.library.settings.Settings, made by setting(default,
meaning, check); a Check says what the setting accepts (for
docs/settings.md) and holds the function that returns the value as Settings
keeps it, or raises the refusal: one paragraph naming the host, the setting
and the fix. The checks here serve many settings; a check for one setting
alone lives beside its declaration.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from operations._printed import Refusal
from operations.mounts import parse_size

_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")
# Directories a build path must not be: the package mounts, cleans or
# watches what it is given.
_SHARED_DIRS = ("", "/tmp", "/var", "/usr", "/home")
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_MIN_SIZE = 16 * 1024**2


class SettingsError(Refusal):
    """Bad inventory or host data, found before anything is changed."""


def shown(text: str) -> str:
    """A name as printed: as is when ASCII, else escaped (everything printed is ASCII)."""
    return text if text.isascii() else ascii(text)


def refusal(host_name: str, key: str, value: object, problem: str, fix: str) -> SettingsError:
    return SettingsError(
        f"host {shown(host_name)}: setting {shown(key)} = {ascii(value)} {problem}. Fix: {fix} "
        f"(in the inventory's host data, inventories/group_data/ or --data). Nothing was changed on any host."
    )


def refuse_non_ascii(host_name: str, key: str, value: object) -> None:
    if not repr(value).isascii():
        raise refusal(
            host_name, key, value, "contains non-ASCII characters",
            "use plain ASCII: everything this package writes and prints is ASCII",
        )


# --- a declaration and its check -------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """One setting being read on one host."""

    host: str
    key: str
    data: dict[str, object]  # the host's data, as pyinfra merged it
    checked: dict[str, object]  # the settings read before this one, by field name

    def fail(self, value: object, problem: str, fix: str) -> SettingsError:
        return refusal(self.host, self.key, value, problem, fix)


@dataclass(frozen=True)
class Check:
    accepts: str  # what docs/settings.md says the setting takes
    run: Callable[[object, Reading], object]


@dataclass(frozen=True)
class Declaration:
    default: object  # as it would be written in host data
    meaning: str  # a sentence or two for docs/settings.md
    check: Check


def setting(default: object, meaning: str, check: Check) -> Any:
    """A field of Settings, read from host data distcc_<field name>."""
    return field(metadata={"declaration": Declaration(default, meaning, check)})


# --- the checks many settings share: each takes the value and where it is
# read, and returns the value as Settings holds it, or raises the refusal ------


def optional(check: Check) -> Check:
    """None, which leaves the value to be derived where it is used, or what check takes."""
    return Check(f"{check.accepts}, or None", lambda value, at: None if value is None else check.run(value, at))


def _flag(value: object, at: Reading) -> bool:
    if not isinstance(value, bool):
        raise at.fail(value, "is not True or False", f"set {at.key} = True or {at.key} = False")
    return value


FLAG = Check("True or False", _flag)


def whole(low: int, high: int) -> Check:
    def run(value: object, at: Reading) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise at.fail(value, f"is not a whole number from {low} to {high}", f"set {at.key} to such a number")
        return value

    return Check(f"a whole number from {low} to {high}", run)


def is_dedicated_path(path: object) -> bool:
    return isinstance(path, str) and bool(_PATH.match(path)) and path.rstrip("/") not in _SHARED_DIRS


def dedicated_path(fix: str) -> Check:
    def run(value: object, at: Reading) -> str:
        if not is_dedicated_path(value):
            raise at.fail(value, "is not a dedicated absolute path", fix)
        return str(value).rstrip("/")

    return Check("an absolute path of its own", run)


def _size(value: object, at: Reading) -> str:
    try:
        if isinstance(value, bool) or parse_size(str(value)) < _MIN_SIZE:
            raise ValueError("too small")
    except ValueError:
        raise at.fail(
            value, "is not a size of at least 16M",
            "write it as a whole number with K, M or G (powers of 1024), e.g. '3G' or '1536M'",
        ) from None
    return str(value).upper()


SIZE = Check("a size of at least 16M, with K, M or G", _size)


def matches(pattern: re.Pattern[str]) -> Callable[[object], bool]:
    return lambda item: isinstance(item, str) and bool(pattern.match(item))


def listing(
    accepts: str, is_item: Callable[[object], bool], problem: str, fix: str, each: Callable[[Any], Any] = str,
) -> Check:
    """A list (or tuple) whose every item passes is_item, each item then
    tidied by each; a string is refused, as it is never meant as a list."""

    def run(value: object, at: Reading) -> tuple[str, ...]:
        if isinstance(value, str) or not isinstance(value, list | tuple) or not all(is_item(i) for i in value):
            raise at.fail(value, problem, fix)
        return tuple(each(item) for item in value)

    return Check(accepts, run)


def _address(value: object, at: Reading) -> str:
    """One host's own unicast IPv4 address: 0.0.0.0 would mean every address
    (distccd on all interfaces), and loopback or multicast cannot link the
    builder and a worker."""
    try:
        address = ipaddress.IPv4Address(str(value).strip())
    except ValueError:
        raise at.fail(value, "is not an IPv4 address", f"set {at.key} to an address like 10.0.0.11") from None
    kind = (
        "the any-address (every interface)" if address.is_unspecified
        else "a loopback address" if address.is_loopback
        else "a multicast or broadcast address" if address.is_multicast or address == _BROADCAST
        else None
    )
    if kind:
        raise at.fail(
            value, f"is {kind}, not one host's address on the cluster network",
            f"set {at.key} to the LAN address of that Pi, e.g. 10.0.0.11, or leave it unset for the default",
        )
    return str(address)


ADDRESS = Check("one host's IPv4 address", _address)
