"""The cluster-wide checks, of the builder reaching each worker (W-REACH,
W-ALLOW-BUILDER): judged on the worker's line, from the builder's TCP
probe of it and the worker's --allow.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from deploys.library.validation.model import FAIL, HEAL, PASS, WARN, Subject, check


@check("W-REACH", column="reach", role="worker",
       about="cluster: the builder opens TCP to the worker's distccd port")
def worker_reach(s: Subject) -> tuple[str, str]:
    port, reach = s.settings.port, s.reach
    if s.builder is None:
        return FAIL, "the builder was not surveyed, so it could not probe this worker (see its H-REACHABLE)"
    if reach is None:
        return FAIL, f"the builder's survey has no probe of {s.node.peer}; run validation again"
    status = reach.get("status", "open" if reach["open"] else "closed")
    target = f"{reach['address']}:{port}"
    # The builder's name for this worker resolving to another host: the
    # probe (and every job) went there, whatever answered.
    own = (s.survey.get("resources") or {}).get("addresses") or []
    if reach["address"] and own and reach["address"] not in own:
        return FAIL, (
            f"the builder resolves {s.node.peer} to {reach['address']}, but this worker's addresses are "
            f"{', '.join(own)}: its probe, and every job, goes to another host ({status}); fix the builder's "
            f"/etc/hosts or the DNS record so {s.node.peer} resolves to this worker, then {HEAL}"
        )
    if status == "open":
        return PASS, f"builder {reach['source']} -> {target} open"
    if status == "unresolved":
        return FAIL, f"the builder cannot resolve {s.node.peer}: add it to DNS or the builder's /etc/hosts"
    if status == "noroute":
        return FAIL, (
            f"the builder has no route to {s.node.peer} ({reach['address']}): add one on the builder (ip route) "
            f"or fix the builder's network configuration"
        )
    route_problem = s.builder_route_problem()
    if status in ("timeout", "unreachable", "closed") and route_problem:
        return FAIL, f"the builder's TCP to {target} got no answer ({status}), and {route_problem}"
    if status == "timeout":
        return FAIL, (
            f"TCP from the builder to {target} timed out: a firewall drops it (port filtered); allow TCP port "
            f"{port} from {reach['source']} on this worker's firewall (iptables/nftables) and any firewall between"
        )
    listening_there = any(
        sock["address"] in (reach["address"], "0.0.0.0", "*", "::") and sock["port"] == port
        for sock in s.survey["listening"]
    )
    if status == "refused" and not listening_there:
        return FAIL, f"the builder's TCP to {target} was refused: nothing listens there (distccd down); {HEAL}"
    if status == "refused":
        return FAIL, (
            f"the builder's TCP to {target} was refused although distccd listens there: a firewall rule rejects "
            f"it; allow TCP port {port} from {reach['source']} on this worker's firewall"
        )
    if status == "unreachable":
        return FAIL, (
            f"the builder gets host unreachable for {target}: the worker is down, or a firewall rejects with "
            f"ICMP; check the worker's network and allow TCP port {port} from {reach['source']}"
        )
    return FAIL, f"the builder could not open {target}; check the network between the builder and this worker"


@check("W-ALLOW-BUILDER", column="allows-builder", role="worker",
       about="cluster: the worker's --allow covers the builder's source address")
def worker_allows_builder(s: Subject) -> tuple[str, str]:
    reach = s.reach
    if reach is None or reach["source"] is None or not s.allows:
        return WARN, "cannot tell: no builder source address or no --allow"
    source = IPv4Address(reach["source"])
    if any(source in IPv4Network(a, strict=False) for a in s.allows):
        return PASS, f"builder {reach['source']} is allowed"
    denied = f"builder's address {reach['source']} is not in --allow {' '.join(s.allows)} (its jobs are denied)"
    configured = s.config["allow"] if s.config else ()
    if any(source in IPv4Network(a, strict=False) for a in configured):
        return FAIL, f"{denied}: the running distccd's --allow is not the configured {' '.join(configured)}; {HEAL}"
    name_problem = s.builder_name_problem()
    if name_problem:
        return FAIL, f"{denied}: {name_problem}"
    return FAIL, f"{denied}; set distcc_allow or distcc_builder_address, then {HEAL}"
