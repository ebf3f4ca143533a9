"""The worker side of build mode: distccd installed and configured, serving,
and stopped again on the way back to k3s mode."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from pyinfra import host, inventory, state
from pyinfra.api import deploy

from deploys.library.build_guard import refuse_under_running_build
from deploys.library.cluster import builder_host, host_resources, peer_name, role_of, run_cache, worker_jobs
from deploys.library.settings import Settings, SettingsError, settings_for
from facts.distcc import Cc1Processes, DistccdListening, DistccProcesses, FileAge, foreign_listeners, holder_text
from facts.network import PeerRoute, Route
from facts.systemd import UnitState
from operations import distcc
from operations._observed import BODY, BOTH, observed
from operations.templates import render_template

OVERRIDE_TEMPLATE = "distcc-override.conf.j2"
JOBS_LOST = (
    "the build's jobs on this worker fail: the builder compiles them again itself (slower), or the build "
    "fails with distcc_client_fallback=False"
)


def distccd_config(settings: Settings, builder_route: Route, jobs: int) -> dict:
    """distccd's command line for this worker, and the override's context.

    Defaults come from the worker's own view of the network: it listens on
    the address it uses toward the builder and allows only the builder's
    address as it resolves it (/32), so nothing is open by accident."""
    listen = settings.listen or builder_route["source"]
    allow = settings.allow or (f"{builder_route['address']}/32",)
    argv = ["/usr/bin/distccd", "--daemon", "--no-detach", "--port", str(settings.port), "--listen", listen]
    for network in allow:
        argv += ["--allow", network]
    argv += [
        "--jobs", str(jobs),
        "--nice", str(settings.nice),
        "--log-file", f"{settings.log_dir}/distccd.log",
        "--log-level", settings.log_level,
    ]
    return {
        "argv": argv, "listen": listen, "allow": allow, "jobs": jobs, "log_dir": settings.log_dir,
        "tmp_size": settings.worker_tmp_size,
    }


def override_text(config: dict) -> str:
    """The drop-in this package writes for a worker's distccd, as written:
    the one rendering the install and validation's W-OVERRIDE both use."""
    return render_template(OVERRIDE_TEMPLATE, config)


def builder_peer(settings: Settings) -> str:
    """How this host names the builder: distcc_builder_address, else the
    builder's inventory name."""
    return settings.builder_address or peer_name(builder_host(inventory))


def loopback_derivation(settings: Settings, peer: str, route: Route) -> str | None:
    """Why the addresses derived from the builder's name cannot serve, or
    None. Explicit distcc_listen/distcc_allow are refused on loopback by the
    settings; derived ones must be too: a Debian-style `127.0.1.1 NAME` line
    for the builder's name makes distccd listen on loopback and allow only
    itself, so every job from the builder would be refused."""
    derived = []
    if settings.listen is None and route["source"] and IPv4Address(route["source"]).is_loopback:
        derived.append(f"listen on {route['source']}")
    if settings.allow is None and route["address"] and IPv4Address(route["address"]).is_loopback:
        derived.append(f"allow only {route['address']}/32")
    if not derived:
        return None
    return (
        f"the builder's name {peer} resolves on this worker to {route['address']}, a loopback address (often a "
        f"127.0.1.1 line in /etc/hosts), so distccd would {' and '.join(derived)} and refuse every job from the "
        f"builder (settings distcc_builder_address, distcc_listen, distcc_allow)"
    )


def foreign_builder_address(settings: Settings, peer: str, route: Route) -> str | None:
    """Why the builder's address as this worker has it is not the builder's,
    with the fix; None when it is one of the builder's own (read once per
    run, host_resources). The derived --allow is that address: a stale
    /etc/hosts line or DNS record would make distccd deny every job from
    the real builder and accept another host's. A derived address is never
    written unchecked: with the builder not connected in this run it is
    refused; an explicit distcc_allow is taken as given then."""
    builder = builder_host(inventory)
    theirs = (host_resources(state, [builder])[builder.name] or {}).get("addresses")
    if settings.builder_address:
        source = f"setting distcc_builder_address = {settings.builder_address!r} is {route['address']}"
        fix = "set distcc_builder_address to one of the builder's addresses"
    else:
        source = f"the builder's name {peer} resolves on this worker to {route['address']}"
        fix = f"make {peer} resolve to the builder's address on this worker (its /etc/hosts or DNS)"
    if not theirs:
        if settings.allow is not None:
            return None
        return (
            f"{source}, and the builder is not connected in this run, so that address cannot be checked against "
            f"the builder's own before distccd is told to allow it (setting distcc_allow). Fix: make the builder "
            f"reachable and run the mode switch again, or set distcc_allow on this worker"
        )
    if settings.allow is not None:
        covered = any(IPv4Address(a) in IPv4Network(n, strict=False) for a in theirs for n in settings.allow)
        if covered:
            return None
        return (
            f"setting distcc_allow = {list(settings.allow)} covers none of the builder's addresses "
            f"({', '.join(theirs)}), so distccd would deny every job from it. Fix: allow the builder's address, "
            f"e.g. distcc_allow = ['{theirs[0]}/32']"
        )
    if route["address"] in theirs:
        return None
    return (
        f"{source}, but the builder's addresses are {', '.join(theirs)}: distccd would allow "
        f"{route['address']}/32 and deny every job from the builder. Fix: {fix}, then run the mode switch again"
    )


def unroutable_builder(peer: str) -> SettingsError:
    return SettingsError(
        f"host {host.name}: cannot work out distccd's addresses: the builder {peer} does not "
        f"resolve or has no route from this worker (setting distcc_builder_address). Fix: make "
        f"{peer} resolvable on the worker (DNS or /etc/hosts), or set distcc_builder_address "
        f"(and if needed distcc_listen) in its host data. Nothing was changed on any host."
    )


def daemon_config(settings: Settings) -> dict:
    """distccd_config() for the current host, from its facts (once per run),
    refused before any host changes when the addresses cannot serve."""
    configs = run_cache(state, "distccd config")
    if host.name not in configs:
        peer = builder_peer(settings)
        route = observed(PeerRoute, peer=peer)
        if route["address"] is None or route["source"] is None:
            raise unroutable_builder(peer)
        loopback = loopback_derivation(settings, peer, route)
        if loopback:
            raise SettingsError(
                f"host {host.name}: {loopback}. Fix: make {peer} resolve to the builder's LAN address on this "
                f"worker (remove it from the 127.0.1.1 line of /etc/hosts, or fix DNS), or set "
                f"distcc_builder_address to that address. Nothing was changed on any host."
            )
        wrong = foreign_builder_address(settings, peer, route)
        if wrong:
            raise SettingsError(f"host {host.name}: {wrong}. Nothing was changed on any host.")
        # The builder's host list read this worker's CPUs and memory already
        # (once per run; worker_jobs keeps it).
        jobs = worker_jobs(state, [host])[host.name]
        if jobs is None:
            raise SettingsError(
                f"host {host.name}: cannot work out distccd's --jobs: this worker's CPUs and memory could not be "
                f"read (setting distcc_jobs). Fix: check that the worker is reachable and answers, or set "
                f"distcc_jobs in its host data. Nothing was changed on any host."
            )
        configs[host.name] = distccd_config(settings, route, jobs)
    return configs[host.name]


def config_reads(settings: Settings) -> list:
    """What daemon_config reads on a worker, while the deploy loads."""
    return [(PeerRoute, {"peer": builder_peer(settings)}, BODY)]


def serving_reads(settings: Settings) -> list:
    """What worker_serving's operations read. The process table comes first:
    a cc1 is stale only when its distccd is not the unit's, so the unit's
    main pid must not be older than the table (a restart in between would
    make the new daemon's jobs look stale)."""
    # The deploy's code reads distccd's health too (the build guard).
    return [
        (DistccProcesses, {}, BOTH),
        (Cc1Processes, {}),
        (UnitState, {"unit": distcc.UNIT}, BOTH),
        # Also while loading: a port held by another program is refused then.
        (DistccdListening, {"port": settings.port}, BOTH),
        (FileAge, {"path": distcc.OVERRIDE}, BOTH),
    ]


def port_held_by_another_program(settings: Settings, address: str) -> SettingsError | None:
    """The refusal when another program than distccd holds distccd's port
    where distccd must listen: restarting distccd into it would only fail
    with distccd's "bind ... failed: Address already in use", without
    naming the program."""
    held = foreign_listeners(observed(DistccdListening, port=settings.port), address)
    if not held:
        return None
    pids = " ".join(str(s["pid"]) for s in held)
    return SettingsError(
        f"host {host.name}: port {settings.port} on {host.name} is held by {'; '.join(map(holder_text, held))}, "
        f"so distccd cannot listen on {address}:{settings.port} (setting distcc_port). Fix: stop that program "
        f"(kill {pids}, or stop the service that runs it), or set distcc_port to a free port in this worker's "
        f"host data; then run the mode switch again. Nothing was changed on any host."
    )


def stopped_reads(settings: Settings) -> list:
    return [(DistccProcesses, {}), (Cc1Processes, {}), (UnitState, {"unit": distcc.UNIT}, BOTH)]


@deploy("worker serving")
def worker_serving():
    """A worker's distccd serving with exactly the configured command line,
    stale compilers killed; a healthy, current distccd is left alone. Runs
    after distcc_installed, which puts the override in place."""
    settings = settings_for(host)
    if role_of(host) != "worker":
        return
    config = daemon_config(settings)
    address, port, argv = config["listen"], settings.port, config["argv"]
    refusal = port_held_by_another_program(settings, address)
    if refusal:
        raise refusal
    unit, reason = distcc.health(argv, address, port)
    if distcc.reset_stops_distccd(unit, reason, settings.force_restart):
        refuse_under_running_build(
            settings, f"stop and restart distccd on this worker ({reason or 'setting distcc_force_restart'})",
            JOBS_LOST,
        )
    distcc.distccd_stopped_for_reset(
        name="Stop distccd when unhealthy", argv=argv, address=address, port=port, force=settings.force_restart
    )
    distcc.stale_compilers_killed(name="Kill stale distccd and cc1 processes")
    distcc.distccd_running(name="distccd active and listening", argv=argv, address=address, port=port)


@deploy("worker stopped")
def worker_stopped():
    """A worker's distccd stopped and disabled (so a reboot in k3s mode starts
    no distccd), and its leftovers killed (k3s mode)."""
    if role_of(host) != "worker":
        return
    if distcc.distccd_active(observed(UnitState, unit=distcc.UNIT)):
        refuse_under_running_build(settings_for(host), "stop distccd on this worker", JOBS_LOST)
    distcc.distccd_stopped(name="Stop and disable distccd", disable=True)
    distcc.stale_compilers_killed(name="Kill stale distccd and cc1 processes")
