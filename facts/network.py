"""Facts about the network path from this host to a peer: which interface and
source address the kernel picks, and the MTU on that path (a mismatch stalls
distcc's large transfers while small probes still pass)."""

from __future__ import annotations

import re
from typing import TypedDict

from pyinfra.api import StringCommand

from facts._parsed import ParsedFact
from facts._shell import assign
from facts.host import ADDRESSES_OF, resolve_v4

_ROUTE = re.compile(r"\bdev (?P<dev>\S+)|\bsrc (?P<src>\S+)|\bmtu (?P<mtu>\d+)")


class Route(TypedDict):
    peer: str
    address: str | None
    interface: str | None
    source: str | None
    mtu: int | None


def route_parts(line: str) -> tuple[str | None, str | None, int | None]:
    """The device, source and own MTU of an `ip -o route get` line, each
    the last one given (None where it names none)."""
    device = source = mtu = None
    for match in _ROUTE.finditer(line):
        if match.group("dev"):
            device = match.group("dev")
        elif match.group("src"):
            source = match.group("src")
        elif match.group("mtu"):
            mtu = int(match.group("mtu"))
    return device, source, mtu


def parse_route(lines: list[str], peer: str = "") -> Route:
    route = Route(peer=peer, address=None, interface=None, source=None, mtu=None)
    route_mtu = link_mtu = None
    for line in lines:
        kind, _, rest = line.strip().partition(" ")
        if kind == "peer":
            route["peer"] = rest
        elif kind == "address":
            route["address"] = rest.strip() or None
        elif kind == "route":
            device, source, route_mtu = route_parts(rest)
            route["interface"] = device or route["interface"]
            route["source"] = source or route["source"]
        elif kind == "linkmtu" and rest.strip().isdigit():
            link_mtu = int(rest)
    route["mtu"] = route_mtu or link_mtu
    return route


# $d: the device of the route line in $r (`ip -o route get`), by the
# shell itself; `${r##* dev }` takes the last " dev ", as sed's greedy
# `.* dev ` did. Then $m: that device's MTU. For PeerRoute and a
# worker's route to the builder in the survey; the builder's reach of
# every worker prints its route lines and leaves this to parse_reach.
ROUTE_DEVICE = 'case "$r" in *" dev "*) d=${r##* dev }; d=${d%% *};; esac;'
DEVICE_MTU = '[ -n "$d" ] && read -r m 2>/dev/null </sys/class/net/"$d"/mtu'


def route_lines(peer: str) -> StringCommand:
    """PeerRoute's lines, the peer's address read from resolve_v4's $A.

    $a: the peer's first IPv4 address (getent's first), $r the kernel's
    route to it (ip -o: one line), $d that route's device and $m the
    device's MTU; every step but ip done by the shell itself, since a CM3+
    pays for every process start."""
    return StringCommand(
        assign("n", peer), ";", ADDRESSES_OF,
        'a=${x%% *}; r=; d=; m=;'
        ' [ -n "$a" ] && r=$(ip -o route get "$a" 2>/dev/null | { IFS= read -r l; printf %s "$l"; });'
        " " + ROUTE_DEVICE + " " + DEVICE_MTU, ";",
        'printf "peer %s\\naddress %s\\n" "$n" "$a";'
        ' if [ -n "$a" ]; then printf "route %s\\n" "$r"; [ -n "$d" ] && printf "linkmtu %s\\n" "$m"; fi', "; true",
    )


class PeerRoute(ParsedFact[Route]):
    """
    How this host reaches a peer given by name or address.

    .. code:: python

        {"peer": "builder.distcc.internal", "address": "172.31.250.2",
         "interface": "eth0", "source": "172.31.250.3", "mtu": 1500}

    `address` is None when the name does not resolve; the rest is None when
    there is no route. `mtu` is the route's own MTU if it has one, else the
    interface's.
    """

    def command(self, peer: str) -> StringCommand:
        return StringCommand(resolve_v4([peer]), route_lines(peer))

    parse = staticmethod(parse_route)
