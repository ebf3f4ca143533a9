"""Read-only validation of DISTCC BUILD MODE.

Every host answers one survey (facts/survey.py) while the deploy file loads,
in parallel; when all connected hosts have answered, the last one evaluates
every check against the whole cluster, prints an ASCII table and the details,
writes the JSON report, and fails the run when a check FAILs. No operation is
added, so validation can change nothing, with or without --dry.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import gevent.event
from pyinfra import host, inventory, state
from pyinfra.api import deploy
from pyinfra.api.exceptions import PyinfraError

from deploys.library.cluster import builder_host, check_inventory, peer_name, role_of, worker_hosts
from deploys.library.settings import Settings, jobs_for, settings_for, tmpfs_size_for
from deploys.library.worker import OVERRIDE_TEMPLATE, builder_peer, distccd_config
from facts.distcc import ProcessInfo
from facts.survey import HostSurvey, Survey
from operations.distcc import UNIT
from operations.mounts import tmpfs_bytes
from operations.systemd import dropin_path
from operations.templates import render_template

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
HEAL = "run deploys/mode_switch.py"

# Stable check IDs, in table order, with what each looks at.
CHECKS = {
    "H-REACHABLE": "pyinfra could connect to the host",
    "B-TMPFS": "builder: tmpfs at the build path, its size, mode and exec, and in fstab",
    "B-DISTCCD-OFF": "builder: distccd inactive, disabled, not running, not listening",
    "B-CLIENT": "builder: distcc client installed",
    "B-HOSTS": "builder: distcc --show-hosts lists exactly the inventory's workers",
    "B-PATH": "builder: /usr/lib/distcc first on the build user's login PATH",
    "B-DRYRUN": "builder: distcc -j (parses the host list, contacts nobody) gives the workers' slots",
    "W-DISTCCD": "worker: distccd active, running, and listening on its address:port",
    "W-OVERRIDE": "worker: override present and equal to what this package renders",
    "W-WHITELIST": "worker: /usr/lib/distcc links every compiler the builder sends",
    "W-ALLOW": "worker: an explicit --allow that does not cover every address",
    "W-INSECURE": "worker: no --enable-tcp-insecure",
    "W-LISTEN": "worker: not listening on all addresses",
    "W-USER": "worker: distccd runs as user distccd",
    "W-REACH": "cluster: the builder opens TCP to the worker's distccd port",
    "W-ALLOW-BUILDER": "cluster: the worker's --allow covers the builder's source address",
    "H-GCC": "gcc version and target equal the builder's",
    "H-MTU": "MTU toward the builder equals the builder's and the configured one",
    "H-FQDN": "FQDN set, unique in the cluster, and every node name resolves",
    "H-K3S": "k3s units stopped; WARN while containerd-shim processes remain",
}
SHORT = {
    "H-REACHABLE": "conn", "B-TMPFS": "tmpfs", "B-DISTCCD-OFF": "nodcd", "B-CLIENT": "clnt", "B-HOSTS": "hosts",
    "B-PATH": "path", "B-DRYRUN": "dry", "W-DISTCCD": "dcc", "W-OVERRIDE": "ovrd", "W-WHITELIST": "wlist",
    "W-ALLOW": "allow", "W-INSECURE": "insec", "W-LISTEN": "lstn", "W-USER": "user", "W-REACH": "reach",
    "W-ALLOW-BUILDER": "allwb", "H-GCC": "gcc", "H-MTU": "mtu", "H-FQDN": "fqdn", "H-K3S": "k3s",
}


@dataclass(frozen=True)
class Check:
    id: str
    result: str
    detail: str


class ValidationFailed(PyinfraError):
    """At least one check FAILed; the message names each."""


class _Run:
    """One validation run: surveys gathered from every connected host."""

    def __init__(self, expected: set[str]):
        self.expected = expected
        self.surveys: dict[str, Survey | None] = {}
        self.done = gevent.event.Event()

    def arrive(self, name: str, survey: Survey | None) -> bool:
        """Store a survey; True for the last host to arrive."""
        self.surveys[name] = survey
        if set(self.surveys) >= self.expected:
            self.done.set()
            return True
        return False


_runs: dict[int, _Run] = {}


def _argv_values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


def _main_process(survey: Survey) -> ProcessInfo | None:
    """The distccd that is the unit's main process, if it runs."""
    main_pid = survey["unit"]["main_pid"]
    return next((p for p in survey["processes"]["distccd"] if main_pid and p["pid"] == main_pid), None)


def _jobs(worker, surveys: dict[str, Survey | None]) -> int | None:
    settings = settings_for(worker)
    if settings.jobs is not None:
        return settings.jobs
    survey = surveys.get(worker.name)
    return jobs_for(settings, **survey["resources"]) if survey and "resources" in survey else None


def builder_checks(settings: Settings, survey: Survey, surveys: dict[str, Survey | None]) -> list[Check]:
    checks = []
    mount = survey["mount"]["mount"]
    path = settings.tmpfs_path
    size = tmpfs_size_for(settings, survey["mount"]["memory_bytes"])
    want_size = tmpfs_bytes(size)
    if mount is None:
        checks.append(Check("B-TMPFS", FAIL, f"nothing is mounted at {path}; {HEAL}"))
    elif mount["fstype"] != "tmpfs":
        checks.append(Check("B-TMPFS", FAIL, f"{path} is {mount['fstype']}, not tmpfs; unmount it, then {HEAL}"))
    else:
        problems = []
        if mount["size"] != want_size:
            problems.append(f"size {mount['size']} bytes, want {want_size} ({size})")
        if mount["noexec"]:
            problems.append("mounted noexec (kernel builds run the tools they compile)")
        if mount["mode"] != settings.tmpfs_mode:
            problems.append(f"mode {mount['mode']}, want {settings.tmpfs_mode}")
        if survey["mount"]["fstab"] is None:
            problems.append("missing from /etc/fstab")
        checks.append(
            Check("B-TMPFS", FAIL, "; ".join(problems) + f"; {HEAL}")
            if problems
            else Check("B-TMPFS", PASS, f"tmpfs {size} mode {mount['mode']} exec, in fstab")
        )

    unit, listening = survey["unit"], survey["listening"]
    running = survey["processes"]["distccd"]
    off_problems = []
    if unit["load"] == "loaded" and unit["active"] not in ("inactive", "failed"):
        off_problems.append(f"{UNIT} is {unit['active']} ({unit['sub']})")
    if unit["load"] == "loaded" and unit["enabled"]:
        off_problems.append(f"{UNIT} is enabled")
    if running:
        off_problems.append(f"distccd processes run (pids {', '.join(str(p['pid']) for p in running)})")
    if listening:
        off_problems.append(f"something listens on port {settings.port}")
    checks.append(
        Check("B-DISTCCD-OFF", FAIL, "; ".join(off_problems) + f"; the builder must not serve compiles: {HEAL}")
        if off_problems
        else Check("B-DISTCCD-OFF", PASS, "no distccd: inactive, disabled, nothing listening")
    )

    installed = survey["masquerade"]["distcc_installed"]
    checks.append(
        Check("B-CLIENT", PASS, "distcc installed")
        if installed
        else Check("B-CLIENT", FAIL, f"distcc is not installed; {HEAL}")
    )

    login = survey["login"]
    expected_hosts = []
    unknown_jobs = []
    want_slots = 0
    for worker in worker_hosts(inventory):
        jobs = _jobs(worker, surveys)
        if jobs is None:
            unknown_jobs.append(worker.name)
            continue
        expected_hosts.append(f"{peer_name(worker)}:{settings_for(worker).port}/{jobs}")
        want_slots += jobs
    shown = login["distcc_hosts"]
    if not login["exists"]:
        checks.append(Check("B-HOSTS", FAIL, f"build user {settings.build_user} does not exist; set distcc_build_user"))
    elif shown is None:
        checks.append(Check("B-HOSTS", FAIL, f"distcc --show-hosts cannot run for {settings.build_user}; {HEAL}"))
    elif unknown_jobs:
        checks.append(Check("B-HOSTS", WARN, f"cannot compare: no survey from {', '.join(unknown_jobs)}"))
    elif sorted(shown) != sorted(expected_hosts):
        checks.append(
            Check("B-HOSTS", FAIL, f"host list is {' '.join(shown) or 'empty'}, want {' '.join(expected_hosts)}; {HEAL}")
        )
    else:
        checks.append(Check("B-HOSTS", PASS, f"{len(shown)} workers: {' '.join(shown)}"))

    path = login["path"]
    if path[:1] == ["/usr/lib/distcc"]:
        checks.append(Check("B-PATH", PASS, "/usr/lib/distcc first on the login PATH"))
    else:
        checks.append(Check("B-PATH", FAIL, f"login PATH starts {':'.join(path[:3]) or '(empty)'}, not /usr/lib/distcc; {HEAL}"))

    slots = survey.get("slots")
    if slots is None:
        checks.append(Check("B-DRYRUN", FAIL, f"distcc -j gave no slot count for {settings.build_user}; {HEAL}"))
    elif slots != want_slots and not unknown_jobs:
        checks.append(Check("B-DRYRUN", FAIL, f"distcc -j says {slots} slots, the workers offer {want_slots}; {HEAL}"))
    else:
        checks.append(Check("B-DRYRUN", PASS, f"distcc -j: {slots} slots"))
    return checks


def worker_checks(worker, settings: Settings, survey: Survey, builder: Survey | None) -> list[Check]:
    checks = []
    route = survey["builder_route"]
    config = None
    if route["address"] and route["source"]:
        config = distccd_config(settings, route, jobs_for(settings, **survey["resources"]))
    unit, listening = survey["unit"], survey["listening"]
    address = config["listen"] if config else None
    main = _main_process(survey)
    argv = main["args"].split() if main else []

    if unit["load"] != "loaded":
        checks.append(Check("W-DISTCCD", FAIL, f"distcc is not installed; {HEAL}"))
    elif unit["active"] != "active" or unit["sub"] != "running" or not unit["main_pid"]:
        checks.append(Check("W-DISTCCD", FAIL, f"{UNIT} is {unit['active']} ({unit['sub']}) with no daemon; {HEAL}"))
    elif not any(s["address"] == address and s["port"] == settings.port for s in listening):
        found = ", ".join(f"{s['address']}:{s['port']}" for s in listening) or "nothing"
        checks.append(Check("W-DISTCCD", FAIL, f"active but not listening on {address}:{settings.port} (found {found}); {HEAL}"))
    else:
        checks.append(Check("W-DISTCCD", PASS, f"pid {unit['main_pid']} listening on {address}:{settings.port}"))

    dest = dropin_path(UNIT, "override.conf")
    current = unit["dropins"].get(dest)
    if config is None:
        checks.append(Check("W-OVERRIDE", FAIL, "the builder does not resolve from here; set distcc_builder_address"))
    elif current is None:
        checks.append(Check("W-OVERRIDE", FAIL, f"{dest} is missing; {HEAL}"))
    elif current != hashlib.sha256(render_template(OVERRIDE_TEMPLATE, config).encode()).hexdigest():
        checks.append(Check("W-OVERRIDE", FAIL, f"{dest} differs from what this package renders; {HEAL}"))
    else:
        checks.append(Check("W-OVERRIDE", PASS, f"{dest} as rendered"))

    links = survey["masquerade"]["links"]
    wanted = set(builder["masquerade"]["compilers"]) if builder and "masquerade" in builder else set()
    if settings.compilers:
        wanted &= set(settings.compilers)
    missing = sorted(n for n in wanted if n not in links)
    others = survey["masquerade"]["other_entries"]
    if missing:
        checks.append(Check("W-WHITELIST", FAIL, f"/usr/lib/distcc lacks {', '.join(missing)} (jobs for it fail); {HEAL}"))
    elif others:
        checks.append(Check("W-WHITELIST", WARN, f"/usr/lib/distcc also holds non-links {', '.join(others)}; remove them"))
    else:
        checks.append(Check("W-WHITELIST", PASS, f"all {len(wanted)} compilers the builder has are linked"))

    allows = _argv_values(argv, "--allow")
    if not argv:
        checks.append(Check("W-ALLOW", WARN, "distccd is not running; its --allow cannot be read"))
    elif not allows:
        checks.append(Check("W-ALLOW", FAIL, f"no --allow: distccd 3.4 then accepts every address; {HEAL}"))
    elif any(IPv4Network(a, strict=False).prefixlen == 0 for a in allows):
        result = WARN if settings.allow_open_ok else FAIL
        checks.append(Check("W-ALLOW", result, f"--allow {' '.join(allows)} covers every address; list only the builder"))
    else:
        checks.append(Check("W-ALLOW", PASS, f"--allow {' '.join(allows)}"))

    insecure = [a for a in argv if a in ("--enable-tcp-insecure", "--make-me-a-botnet")]
    checks.append(
        Check("W-INSECURE", FAIL, f"distccd runs with {insecure[0]} (no compiler whitelist); {HEAL}")
        if insecure
        else Check("W-INSECURE", PASS, "compiler whitelist enforced")
    )

    wildcard = [s for s in listening if s["address"] in ("0.0.0.0", "*", "::")]
    checks.append(
        Check("W-LISTEN", FAIL, f"listening on all addresses ({wildcard[0]['address']}); {HEAL}")
        if wildcard
        else Check("W-LISTEN", PASS, "listens on one address only" if listening else "not listening")
    )

    if main is None:
        checks.append(Check("W-USER", WARN, "distccd is not running"))
    elif main["user"] != "distccd":
        checks.append(Check("W-USER", FAIL, f"distccd runs as {main['user']}, not distccd; {HEAL}"))
    else:
        checks.append(Check("W-USER", PASS, "runs as distccd"))

    reach = next((r for r in (builder or {}).get("reach", []) if r["peer"] == peer_name(worker)), None)
    if reach is None:
        checks.append(Check("W-REACH", FAIL, "no probe from the builder (builder unreachable?)"))
    elif not reach["open"]:
        checks.append(
            Check("W-REACH", FAIL, f"builder could not open {reach['address']}:{settings.port} (refused, filtered or down)")
        )
    else:
        checks.append(Check("W-REACH", PASS, f"builder {reach['source']} -> {reach['address']}:{settings.port} open"))

    if reach is None or reach["source"] is None or not allows:
        checks.append(Check("W-ALLOW-BUILDER", WARN, "cannot tell: no builder source address or no --allow"))
    elif any(IPv4Address(reach["source"]) in IPv4Network(a, strict=False) for a in allows):
        checks.append(Check("W-ALLOW-BUILDER", PASS, f"builder {reach['source']} is allowed"))
    else:
        checks.append(
            Check(
                "W-ALLOW-BUILDER", FAIL,
                f"builder's address {reach['source']} is not in --allow {' '.join(allows)} (its jobs are denied); "
                f"set distcc_allow or distcc_builder_address, then {HEAL}",
            )
        )
    return checks


def host_checks(node, settings: Settings, survey: Survey, surveys: dict[str, Survey | None], builder: Survey | None) -> list[Check]:
    name = node.name
    checks = []
    mine, theirs = survey["identity"], (builder or {}).get("identity")
    if not mine["gcc_version"]:
        checks.append(Check("H-GCC", FAIL, "gcc is not installed"))
    elif theirs is None:
        checks.append(Check("H-GCC", WARN, "no builder survey to compare with"))
    elif (mine["gcc_version"], mine["gcc_machine"]) != (theirs["gcc_version"], theirs["gcc_machine"]):
        checks.append(
            Check(
                "H-GCC", FAIL,
                f"gcc {mine['gcc_version']} {mine['gcc_machine']} but the builder has {theirs['gcc_version']} "
                f"{theirs['gcc_machine']}: objects would be silently wrong; install the builder's gcc",
            )
        )
    else:
        checks.append(Check("H-GCC", PASS, f"gcc {mine['gcc_version']} {mine['gcc_machine']} ({mine['dpkg_architecture']})"))

    if node is builder_host(inventory):
        mtus = {r["mtu"] for r in survey.get("reach", []) if r["mtu"]}
        mtu = mtus.pop() if len(mtus) == 1 else None
        builder_mtu = mtu
    else:
        mtu = survey["builder_route"]["mtu"]
        builder_mtu = next(
            (r["mtu"] for r in (builder or {}).get("reach", []) if r["peer"] == peer_name(node)), None
        )
    if mtu is None:
        checks.append(Check("H-MTU", FAIL, "no route toward the cluster, or MTUs differ between its interfaces"))
    elif mtu != settings.mtu or (builder_mtu is not None and mtu != builder_mtu):
        checks.append(
            Check("H-MTU", FAIL, f"MTU {mtu} toward the builder, builder side {builder_mtu}, configured {settings.mtu}: "
                  f"large distcc transfers can stall; set the interface MTU to {settings.mtu}")
        )
    else:
        checks.append(Check("H-MTU", PASS, f"MTU {mtu}"))

    names = survey["names"]
    fqdn = names["fqdn"]
    others = [s["names"]["fqdn"] for n, s in surveys.items() if s and n != name and "names" in s]
    unresolved = sorted(n for n, addrs in names["resolves"].items() if not addrs)
    if not fqdn or "." not in fqdn:
        checks.append(Check("H-FQDN", FAIL, f"hostname -f gives {fqdn or 'nothing'}, not an FQDN; set the host's domain"))
    elif fqdn in others:
        checks.append(Check("H-FQDN", FAIL, f"{fqdn} is also another node's FQDN; give every Pi its own hostname"))
    elif unresolved:
        checks.append(Check("H-FQDN", FAIL, f"{fqdn}: cannot resolve {', '.join(unresolved)}; fix DNS or /etc/hosts"))
    else:
        checks.append(Check("H-FQDN", PASS, f"{fqdn}, resolves all {len(names['resolves'])} node names"))

    k3s = survey["k3s"]
    active = sorted(u for u, s in k3s["units"].items() if s["active"] not in ("inactive", "failed"))
    if active:
        checks.append(Check("H-K3S", FAIL, f"{', '.join(active)} still {k3s['units'][active[0]]['active']}; {HEAL}"))
    elif k3s["containerd_shims"]:
        checks.append(
            Check("H-K3S", WARN, f"k3s stopped but {k3s['containerd_shims']} containerd-shim processes run: pods still "
                  f"hold CPU and memory (k3s-killall.sh stops them)")
        )
    else:
        checks.append(Check("H-K3S", PASS, f"stopped: {', '.join(k3s['units']) or 'none installed'}"))
    return checks


def evaluate(surveys: dict[str, Survey | None]) -> dict[str, list[Check]]:
    """Every check for every inventory host, from the surveys gathered."""
    builder = builder_host(inventory)
    builder_survey = surveys.get(builder.name)
    results: dict[str, list[Check]] = {}
    for node in [builder, *worker_hosts(inventory)]:
        survey = surveys.get(node.name)
        if survey is None:
            results[node.name] = [Check("H-REACHABLE", FAIL, "could not connect or survey this host; check SSH and that it is up")]
            continue
        settings = settings_for(node)
        checks = [Check("H-REACHABLE", PASS, "surveyed")]
        if node is builder:
            checks += builder_checks(settings, survey, surveys)
        else:
            checks += worker_checks(node, settings, survey, builder_survey)
        checks += host_checks(node, settings, survey, surveys, builder_survey)
        results[node.name] = checks
    return results


def render_table(results: dict[str, list[Check]]) -> str:
    """Hosts by checks, ASCII: ok / FAIL / warn, '.' where a check does not apply."""
    ids = [c for c in CHECKS if any(ch.id == c for checks in results.values() for ch in checks)]
    width = max(len(h) for h in results)
    cell = {PASS: "ok", WARN: "warn", FAIL: "FAIL"}
    header = "host".ljust(width) + " | " + " ".join(SHORT[c].ljust(5) for c in ids)
    lines = [header, "-" * len(header)]
    for name, checks in results.items():
        by_id = {c.id: c for c in checks}
        row = " ".join((cell[by_id[c].result] if c in by_id else ".").ljust(5) for c in ids)
        lines.append(name.ljust(width) + " | " + row)
    lines.append("")
    lines.append("columns: " + ", ".join(f"{SHORT[c]}={c}" for c in ids))
    problems = [(n, c) for n, checks in results.items() for c in checks if c.result != PASS]
    if problems:
        lines.append("")
        for name, check in problems:
            lines.append(f"{check.result} {check.id} {name}: {check.detail}")
    counts = {r: sum(1 for checks in results.values() for c in checks if c.result == r) for r in (PASS, WARN, FAIL)}
    lines.append("")
    lines.append(f"validation: {counts[PASS]} PASS, {counts[WARN]} WARN, {counts[FAIL]} FAIL")
    return "\n".join(lines)


def write_report(path: str, results: dict[str, list[Check]]) -> Path:
    report = Path(path)
    report.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "checks": CHECKS,
        "hosts": {name: [asdict(c) for c in checks] for name, checks in results.items()},
        "failed": sorted({f"{c.id}@{n}" for n, checks in results.items() for c in checks if c.result == FAIL}),
    }
    report.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="ascii")
    return report


def _survey_arguments(settings: Settings) -> dict:
    nodes = [builder_host(inventory), *worker_hosts(inventory)]
    arguments = {
        "names": [peer_name(n) for n in nodes],
        "port": settings.port,
        "k3s_units": list(settings.k3s_units),
    }
    if role_of(host) == "builder":
        arguments.update(
            builder_peer=peer_name(host),
            tmpfs_path=settings.tmpfs_path,
            build_user=settings.build_user,
            workers=[peer_name(w) for w in worker_hosts(inventory)],
        )
    else:
        arguments["builder_peer"] = builder_peer(settings)
    return arguments


@deploy("cluster distcc validate")
def cluster_distcc_validate():
    """Survey every host once, then evaluate, print and report every check."""
    check_inventory(inventory)
    settings = settings_for(host)
    run = _runs.setdefault(id(state), _Run({h.name for h in state.inventory.get_active_hosts()}))
    survey = None
    try:
        survey = host.get_fact(HostSurvey, **_survey_arguments(settings))
    finally:
        last = run.arrive(host.name, survey)
    if not last:
        run.done.wait()
        return
    results = evaluate(run.surveys)
    report = write_report(settings_for(builder_host(inventory)).report_path, results)
    print("\n" + render_table(results) + f"\nreport: {report}\n", file=sys.stderr, flush=True)
    failed = [f"{c.id} on {n}" for n, checks in results.items() for c in checks if c.result == FAIL]
    if failed:
        raise ValidationFailed(
            f"validation: {len(failed)} checks FAILED ({'; '.join(failed)}). The table above says what was found "
            f"and how to fix each; the JSON report is {report}. Most are healed by deploys/mode_switch.py."
        )
