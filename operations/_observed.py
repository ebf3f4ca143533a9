"""What a host looks like now, read in one round trip while nothing changed.

A playbook declares up front, per host, the facts its deploys and
operations will read (plan_reads). The first read of a planned fact in a
phase (loading the deploy, which is also where --dry's predictions are made,
then executing) fetches every planned fact in one remote command
(facts.bundle); later reads in that phase are served from that snapshot for
as long as no operation has changed this host. Once one has, the next
planned read fetches a fresh snapshot, so an operation never sees state from
before another operation's change. A fact that is not planned, or whose
section failed, is read alone with host.get_fact, exactly as before.

Each planned fact says who reads it: the deploy's own code while it loads
(BODY), the operations (OPERATIONS, the default), or both. A snapshot holds
what its phase reads: while loading, the body's facts, and the operations'
too when pyinfra predicts changes (without -y, --dry); while executing, the
operations' facts only.

Operations must read their facts before their first yield: a snapshot is
invalidated when an operation completes with changes, not in the middle of
one (none of this package's operations reads after yielding).
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Iterable
from typing import Any

from pyinfra import host as context_host
from pyinfra import state as context_state
from pyinfra.api import FactBase
from pyinfra.context import ctx_state

from facts.bundle import NOT_READ, FactBundle, Part, as_arguments, distinct_commands, parse_part
from operations._connection import refused_below
from operations._printed import Refusal
from operations._pyinfra import operations_of

BODY = "body"
OPERATIONS = "operations"
BOTH = (BODY, OPERATIONS)

# Per pyinfra State: {host name: _Reads}; dropped with the State.
_reads: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _Reads:
    def __init__(self) -> None:
        self.parts: dict[tuple[type, str], Part] = {}
        self.readers: dict[tuple[type, str], set[str]] = {}
        self.snapshot: dict[tuple[type, str], Any] | None = None
        self.taken_at: tuple[bool, int] | None = None


def _key(cls: type[FactBase], kwargs: dict[str, Any]) -> tuple[type, str]:
    """A read's key: the fact and its arguments as "name=value, ..." in name
    order, the string pyinfra itself prints for a fact's arguments."""
    return cls, ", ".join(f"{name}={value}" for name, value in sorted(kwargs.items()))


def current(obj):
    """The State behind pyinfra's context proxy (`from pyinfra import
    state`), which is one module-level object for every State: caches are
    keyed by the real State, so that each run has its own. Any other object
    (a State already, a test's stand-in) is itself."""
    return ctx_state.get() if obj is context_state else obj


def _host_reads(state, host) -> _Reads:
    return _reads.setdefault(current(state), {}).setdefault(host.name, _Reads())


def plan_reads(host, parts: Iterable[tuple], state=None) -> None:
    """Declare facts that this host will read in this run: (class, kwargs)
    for the operations, or (class, kwargs, readers) with BODY, OPERATIONS or
    BOTH. Adds to what is already planned (parts planned later are read
    together, at their first read, in one more round trip)."""
    reads = _host_reads(state or context_state, host)
    for cls, kwargs, *who in parts:
        key = _key(cls, kwargs)
        reads.parts.setdefault(key, (cls, dict(kwargs)))
        readers = who[0] if who else OPERATIONS
        reads.readers.setdefault(key, set()).update((readers,) if isinstance(readers, str) else readers)


def _phase_parts(state, reads: _Reads) -> list[Part]:
    """The planned facts this phase reads (see the module docstring)."""
    if state.is_executing:
        wanted = {OPERATIONS}
    else:
        wanted = {BODY, OPERATIONS} if state.should_check_for_changes() else {BODY}
    return [part for key, part in reads.parts.items() if reads.readers[key] & wanted]


def changes_so_far(state, host) -> int:
    """How many of this host's operations have completed and run a command."""
    count = 0
    for meta in operations_of(state, host):
        if meta.is_complete() and (meta.did_change() or meta.did_error()):
            count += 1
    return count


class RefusedBelow(Refusal):
    """A host's commands cannot run at all (sudo refused them) while the
    deploy loads: the run stops before any host changes, in those words,
    rather than deciding from the facts' empty defaults."""


def _get_fact(host, cls: type[FactBase], **kwargs: Any) -> Any:
    value = host.get_fact(cls, **kwargs)
    cause = refused_below(host)
    if cause and not current(context_state).is_executing:
        raise RefusedBelow(f"host {host.name}: {cause} (the fix is above). Nothing was changed on any host.")
    return value


def _read(host, parts: list[Part]) -> dict[tuple[type, str], Any]:
    sections = _get_fact(host, FactBundle, parts=as_arguments(parts))
    _, index = distinct_commands(parts)
    values = {}
    for (cls, kwargs), number in zip(parts, index, strict=True):
        values[_key(cls, kwargs)] = parse_part(cls, sections[number] if number < len(sections) else None)
    return values


def observed(cls: type[FactBase], host=None, **kwargs: Any) -> Any:
    """The fact's current value on host (default: the current host), from
    the host's snapshot when the fact is planned; see the module docstring."""
    host = host or context_host
    state = current(context_state)
    reads = _reads.get(state, {}).get(host.name)
    key = _key(cls, kwargs)
    if reads is None or key not in reads.parts:
        return _get_fact(host, cls, **kwargs)
    moment = (bool(state.is_executing), changes_so_far(state, host))
    if reads.snapshot is None or reads.taken_at != moment:
        reads.snapshot = _read(host, _phase_parts(state, reads))
        reads.taken_at = moment
    if key not in reads.snapshot:
        # Planned later, or read in a phase it was not planned for: it and
        # this phase's other unread facts, in one more round trip.
        missing = [p for p in _phase_parts(state, reads) if _key(*p) not in reads.snapshot]
        missing += [] if any(_key(*p) == key for p in missing) else [reads.parts[key]]
        reads.snapshot.update(_read(host, missing))
    value = reads.snapshot.get(key, NOT_READ)
    if value is NOT_READ:
        return _get_fact(host, cls, **kwargs)
    # A copy: an operation may change what it was given.
    return copy.deepcopy(value)
