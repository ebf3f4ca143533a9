"""Facts about the network path from this host to a peer: which interface and
source address the kernel picks, and the MTU on that path (a mismatch stalls
distcc's large transfers while small probes still pass); and, for the
builder's survey, whether a TCP connection to each worker's distccd gets
through (reach_command)."""

from __future__ import annotations

import re
from typing import TypedDict

from pyinfra.api import QuoteString, StringCommand

from facts._parsed import ParsedFact
from facts._script import ShellNote
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


class Reach(TypedDict):
    peer: str
    address: str | None
    source: str | None
    mtu: int | None
    open: bool
    # open, refused (RST: nothing listens, or a REJECT rule), timeout (SYN
    # dropped: a firewall filters the port), unreachable (ICMP host
    # unreachable: host down or rejected), noroute (this host has no route),
    # unresolved (the name does not resolve here), closed (anything else).
    status: str


def reach_command(peers: list[str], port: int) -> StringCommand:
    """From this host: each peer's address, the route's source and MTU, and
    what a TCP connection to peer:port gives (bash's /dev/tcp, 3 s for all):
    a timeout means a firewall drops it, a refusal that nothing listens.

    The builder asks this about every worker, so nothing here starts a
    process per peer: the addresses come from the prelude's one getent a
    name (resolve_v4, which the names section reads too), every route from
    one ip (-batch), every interface's MTU from /sys, every connection from
    one bash (all at once, under one timeout, one subshell each). The shell
    prints what they gave and parse_reach matches them up: matching them in
    the shell took a CM3+ several process starts a peer."""
    bits: list[object] = ["T=; for n in"] + [QuoteString(p) for p in peers]
    bits += [
        # "peer NAME ADDRESS" (- when it does not resolve), the first address
        # of each from the prelude's resolve_v4; T: the addresses.
        "; do", ADDRESSES_OF, "a=${x%% *}; printf 'peer %s %s\\n' \"$n\" \"${a:--}\"; [ -z \"$a\" ] || T=\"$T $a\"; done;",
        "[ -n \"$T\" ] || exit 0;",
        # ip -o's one line per route (none for an address without one).
        "echo routes; printf 'route get %s\\n' $T | ip -o -force -batch - 2>/dev/null;",
        "echo mtus; for f in /sys/class/net/*/mtu; do read -r m <\"$f\" && d=${f%/mtu} && printf '%s %s\\n' \"${d##*/}\" \"$m\"; done;",
        # "C ADDRESS 0|1" for each connection that ended within 3 s, after
        # bash's own error line, which names the address ("...:
        # /dev/tcp/ADDRESS/PORT: Connection refused").
        "echo connects; timeout 3 bash -c 'for a; do ( exec 2>&1; exec 3<>/dev/tcp/$a/" + str(int(port)) + " && echo \"C $a 0\"",
        "|| echo \"C $a 1\" ) & done; wait' - $T 2>/dev/null",
    ]
    return StringCommand(*bits)


# What shellcheck says of reach_command that stands (the readable survey,
# docs/survey-*.sh, puts each before its line).
REACH_SHELLCHECK = (
    ShellNote("SC2086", r"printf 'route get %s\\n' \$T", "$T: the addresses, one word each (dotted IPv4)"),
    ShellNote("SC2086", r"' - \$T ", "$T: the addresses, one word each (dotted IPv4)"),
    ShellNote("SC2016", r"bash -c '", "for bash (its /dev/tcp): $a is each address it is given"),
)


_TCP_ERROR = re.compile(r"/dev/tcp/(?P<address>[^/ ]+)/\d+: (?P<message>.*)$")


def parse_reach(lines: list[str]) -> list[Reach]:
    """The reach section's blocks matched up: each peer's route (the first
    ip line whose first or second word is its address), that route's
    source and its device's MTU, and its connection's outcome."""
    peers: list[tuple[str, str | None]] = []
    routes: list[str] = []
    mtus: dict[str, int] = {}
    ended: dict[str, bool] = {}
    errors: dict[str, str] = {}
    block = "peers"
    for line in lines:
        fields = line.split()
        if line.strip() in ("routes", "mtus", "connects"):
            block = line.strip()
        elif block == "peers" and len(fields) == 3 and fields[0] == "peer":
            peers.append((fields[1], None if fields[2] == "-" else fields[2]))
        elif block == "routes" and fields:
            routes.append(line)
        elif block == "mtus" and len(fields) == 2 and fields[1].isdigit():
            mtus[fields[0]] = int(fields[1])
        elif block == "connects" and len(fields) == 3 and fields[0] == "C":
            ended[fields[1]] = fields[2] == "0"
        elif block == "connects" and (error := _TCP_ERROR.search(line)):
            errors[error.group("address")] = error.group("message")
    found: list[Reach] = []
    for peer, address in peers:
        route = next((r for r in routes if address in r.split()[:2]), None) if address else None
        # The link's MTU, as the shell's DEVICE_MTU read it for the reach.
        device, source, _ = route_parts(route or "")
        mtu = mtus.get(device or "")
        if address is None:
            status = "unresolved"
        elif route is None:
            status = "noroute"
        elif address not in ended:
            status = "timeout"
        elif ended[address]:
            status = "open"
        else:
            message = errors.get(address, "")
            if "refused" in message:
                status = "refused"
            elif "No route" in message or "nreachable" in message:
                status = "unreachable"
            else:
                status = "closed"
        found.append(Reach(peer=peer, address=address, source=source, mtu=mtu, open=status == "open", status=status))
    return found
