"""What validation's checks look at and give: the statuses, a check's
result, one inventory node and the cluster it is in, the Subject a check
function receives, and @check, which declares a check (its ID, its wide
table column, what it looks at and which role it applies to) where it is
written. The checks themselves are in checks/, one module per subject.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from deploys.library.cluster import builder_host, peer_name, worker_hosts
from deploys.library.settings import Settings, jobs_for, settings_for
from deploys.library.worker import distccd_config
from facts.distcc import ProcessInfo
from facts.network import Reach
from facts.survey import Survey

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
HEAL = "run deploys/mode_switch.py"
DISTCC_DIR = "/usr/lib/distcc"
MIB = 1024**2


@dataclass(frozen=True)
class Check:
    id: str
    result: str
    detail: str


# --- what the checks look at ------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One inventory host as validation sees it."""

    name: str
    peer: str
    role: str
    settings: Settings


@dataclass
class Cluster:
    """The inventory's nodes and what each answered; a survey of None means
    the host was not surveyed, `unsurveyed` says why."""

    builder: Node
    workers: list[Node]
    surveys: dict[str, Survey | None]
    unsurveyed: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_inventory(cls, inventory, surveys: dict[str, Survey | None], unsurveyed: dict[str, str] | None = None):
        builder = builder_host(inventory)
        return cls(
            builder=Node(builder.name, peer_name(builder), "builder", settings_for(builder)),
            workers=[Node(w.name, peer_name(w), "worker", settings_for(w)) for w in worker_hosts(inventory)],
            surveys=surveys,
            unsurveyed=dict(unsurveyed or {}),
        )

    @property
    def nodes(self) -> list[Node]:
        return [self.builder, *self.workers]

    @property
    def builder_survey(self) -> Survey | None:
        return self.surveys.get(self.builder.name)

    def jobs(self, worker: Node) -> int | None:
        """What the mode switch gives this worker (jobs_for, as worker_jobs
        does from the same CPUs and memory); distcc_jobs alone when the
        worker was not surveyed."""
        survey = self.surveys.get(worker.name)
        if survey and "resources" in survey:
            return jobs_for(worker.settings, survey["resources"]["cpus"], survey["resources"]["memory_bytes"])
        return worker.settings.jobs


@dataclass
class Subject:
    """One surveyed node, in its cluster: what a check function receives."""

    node: Node
    survey: Survey
    cluster: Cluster

    @property
    def settings(self) -> Settings:
        return self.node.settings

    @property
    def builder(self) -> Survey | None:
        return self.cluster.builder_survey

    @cached_property
    def main_process(self) -> ProcessInfo | None:
        """The distccd that is the unit's main process, if it runs."""
        main_pid = self.survey["unit"]["main_pid"]
        return next((p for p in self.survey["processes"]["distccd"] if main_pid and p["pid"] == main_pid), None)

    @cached_property
    def argv(self) -> list[str]:
        return self.main_process["args"].split() if self.main_process else []

    @cached_property
    def allows(self) -> list[str]:
        return [self.argv[i + 1] for i, arg in enumerate(self.argv[:-1]) if arg == "--allow"]

    @cached_property
    def config(self) -> dict | None:
        """What this package renders for this worker; None when it cannot
        (the builder does not resolve or has no route from here)."""
        route = self.survey["builder_route"]
        if not (route["address"] and route["source"]) or self.builder_name_problem():
            return None
        resources = self.survey["resources"]
        return distccd_config(self.settings, route, jobs_for(self.settings, resources["cpus"], resources["memory_bytes"]))

    @cached_property
    def reach(self) -> Reach | None:
        """The builder's TCP probe of this worker's distccd port."""
        return next((r for r in (self.builder or {}).get("reach", []) if r["peer"] == self.node.peer), None)

    def builder_route_problem(self) -> str | None:
        """Why this worker has no path to the builder, with the fix; None when it has one."""
        route = self.survey["builder_route"]
        peer = route["peer"] or self.cluster.builder.peer
        if not route["address"]:
            return (
                f"the builder's name {peer} does not resolve on this worker: add it to DNS or this worker's "
                f"/etc/hosts, or set distcc_builder_address to the builder's address"
            )
        if not route["source"]:
            return (
                f"this worker has no route to the builder {peer} ({route['address']}): add one (ip route) or fix "
                f"this worker's network configuration"
            )
        return self.builder_name_problem()

    def builder_name_problem(self) -> str | None:
        """Why the address this worker has for the builder is not the
        builder's (a stale /etc/hosts line, a wrong DNS record, a wrong
        distcc_builder_address), with the fix; None when it is one of the
        builder's own addresses, or when the builder's are not known. The
        worker's --allow is derived from it, so every job would be denied."""
        route = self.survey["builder_route"]
        theirs = ((self.builder or {}).get("resources") or {}).get("addresses") or []
        if not (route["address"] and theirs) or route["address"] in theirs:
            return None
        peer = route["peer"] or self.cluster.builder.peer
        if self.settings.builder_address:
            found = f"setting distcc_builder_address = {self.settings.builder_address!r} gives {route['address']}"
            fix = "set it to one of those"
        else:
            found = f"{self.node.peer} resolves the builder's name {peer} to {route['address']}"
            fix = f"make {peer} resolve to one of those on {self.node.peer} (its /etc/hosts or DNS)"
        return f"{found}, but the builder's addresses are {', '.join(theirs)}; {fix}, then {HEAL}"


# --- the registry --------------------------------------------------------------


@dataclass(frozen=True)
class CheckSpec:
    id: str
    column: str
    about: str
    role: str  # builder, worker, or host (every node)
    evaluate: Callable[[Subject], tuple[str, str]]


# Every check declared, in the order its module declares it; checks/ puts
# them in table order.
REGISTERED: list[CheckSpec] = []


def check(check_id: str, *, column: str, about: str, role: str) -> Callable:
    """Register a check: a function of a Subject giving (result, detail).
    Its place in the wide table's columns, and in the order in which a host's
    first problem is chosen, is checks.TABLE_ORDER."""

    def register(function: Callable[[Subject], tuple[str, str]]) -> Callable[[Subject], tuple[str, str]]:
        if any(spec.id == check_id or spec.column == column for spec in REGISTERED):
            raise ValueError(f"check {check_id} (column {column}) is registered twice")
        REGISTERED.append(CheckSpec(check_id, column, about, role, function))
        return function

    return register


def listed(items) -> str:
    return ", ".join(str(i) for i in items)


def denied_paths(denied: list, access: str, paths: tuple[str, ...] = (), prefix: str = "") -> list[str]:
    """The denied paths of this access (read, write, search), among paths or
    under prefix, each named with its owner and mode."""
    return [
        f"{d['path']} (owner {d['owner']}, mode {d['mode']})" for d in denied
        if d["access"] == access and (d["path"] in paths or (prefix and d["path"].startswith(prefix)))
    ]


def mib(value: int) -> str:
    return f"{value // MIB} MiB"


# H-REACHABLE has no function of a survey: it is what decides whether there is one.
REACHABLE = CheckSpec(
    "H-REACHABLE", "reachable", "pyinfra could connect to the host and run the survey", "host", lambda subject: (PASS, "surveyed")
)
REGISTERED.append(REACHABLE)
