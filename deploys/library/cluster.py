"""Who is who in the inventory (one builder, one or more workers), checked
before anything is changed, and what one host needs to know of the others."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import gevent
from gevent.pool import Pool
from pyinfra import logger
from pyinfra.context import ctx_config, ctx_host

from deploys.library.settings import Settings, SettingsError, jobs_for, settings_for, shown
from facts.host import HostResources
from operations._observed import current
from operations._printed import logged

BUILDER_GROUP = "builder"
WORKERS_GROUP = "workers"

# What one run works out once and shares between hosts (pyinfra 3 has no
# fact cache): kept per pyinfra State, and dropped with it.
_run_caches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def run_cache(state, name: str) -> dict:
    """A dict shared by every host of this run, for one kind of value."""
    return _run_caches.setdefault(current(state), {}).setdefault(name, {})


def first_loader(state, kind: str) -> bool:
    """True for the first host whose deploy file loads in this run (for
    this kind of cluster-wide read), False for every later one. A
    cluster-wide read (validation's surveys, the build report's logs, the
    mark) is done whole by that first loader, from greenlets of its own
    (on_each): no loader ever waits for another, so no --parallel value can
    deadlock (the loaders sit in pyinfra's pool, which --parallel 1 makes
    one slot wide)."""
    started = run_cache(state, "cluster-wide reads started")
    if kind in started:
        return False
    started[kind] = True
    return True


def on_each(run_state, hosts: list, read: Callable) -> dict[str, object]:
    """read(node) on each host, at most --parallel at once, from greenlets
    of this run's own: the deploy-file loaders hold pyinfra's pool, so
    spawning there could wait for a slot that never frees. Each host's
    answer by name; None where the read raised, gave nothing, or the host
    failed meanwhile."""
    pool = Pool(max(1, run_state.config.PARALLEL or len(hosts)))

    def one(node):
        with ctx_config.use(run_state.config.copy()), ctx_host.use(node):
            return read(node)

    greenlets = {node: pool.spawn(one, node) for node in hosts}
    gevent.joinall(list(greenlets.values()))
    return {
        node.name: (greenlet.value or None) if greenlet.successful() and node not in run_state.failed_hosts else None
        for node, greenlet in greenlets.items()
    }


def _group(inventory, name: str) -> list:
    return list(dict.fromkeys(inventory.get_group(name, default=[])))


def check_inventory(inventory) -> None:
    """Exactly one builder, at least one worker, and no host in both groups.
    Called while the deploy file loads, so a bad inventory stops the run
    before any operation executes."""
    builders = _group(inventory, BUILDER_GROUP)
    workers = _group(inventory, WORKERS_GROUP)
    fix = "edit the inventory (see inventories/cluster.py). Nothing was changed on any host."
    if len(builders) != 1:
        found = ", ".join(shown(h.name) for h in builders) or "none"
        raise SettingsError(
            f"inventory: the group 'builder' must hold exactly one host, found {len(builders)} ({found}). "
            f"Fix: list the one Pi that runs make as builder (builder = [...]); {fix}"
        )
    if not workers:
        raise SettingsError(
            f"inventory: the group 'workers' is empty or missing; build mode needs at least one worker. "
            f"Fix: list the Pis that run distccd as workers (workers = [...]); {fix}"
        )
    if builders[0] in workers:
        raise SettingsError(
            f"inventory: host {shown(builders[0].name)} is both the builder and a worker; the builder must never "
            f"run distccd. Fix: remove it from workers; {fix}"
        )


def role_of(host) -> str | None:
    if BUILDER_GROUP in host.groups:
        return "builder"
    if WORKERS_GROUP in host.groups:
        return "worker"
    return None


def builder_host(inventory):
    return _group(inventory, BUILDER_GROUP)[0]


def worker_hosts(inventory) -> list:
    return _group(inventory, WORKERS_GROUP)


def peer_name(host) -> str:
    """The name other nodes use for host: its inventory name, without a
    connector prefix such as @ssh/."""
    return host.name.rsplit("/", 1)[-1] if host.name.startswith("@") else host.name


def skip_note(host, deploy_name: str, wanted: str) -> None:
    logger.info(host.print_prefix + logged(
        f"{deploy_name}: skipped, it is for the {wanted}; this host is {role_of(host) or 'in neither group'}"
    ))


_WANTED = {("builder",): "builder", ("worker",): "workers", ("builder", "worker"): "builder and workers"}


def settings_for_role(host, inventory, deploy_name: str, *roles: str) -> Settings | None:
    """Every deploy's prologue, run while the deploy file loads (so before any
    host changes): the inventory's roles and this host's settings checked;
    None, with a note, when this host's role is not one of roles."""
    check_inventory(inventory)
    settings = settings_for(host)
    if role_of(host) not in roles:
        skip_note(host, deploy_name, _WANTED[tuple(roles)])
        return None
    return settings


def host_resources(state, hosts: list) -> dict[str, dict | None]:
    """Each host's HostResources (CPUs, memory, its own addresses), read once
    per run by whichever host asks first, from a greenlet of its own (never
    a pool slot: no host waits for another's loader); a host asking
    meanwhile waits for that read. None for a host not connected in this
    run, or whose read failed."""
    active = set(state.inventory.get_active_hosts())
    reads = run_cache(state, "host resources")
    for other in hosts:
        if other.name not in reads and other in active:
            reads[other.name] = gevent.spawn(other.get_fact, HostResources)
    pending = [reads[h.name] for h in hosts if h.name in reads]
    gevent.joinall(pending)
    found: dict[str, dict | None] = {}
    for other in hosts:
        greenlet = reads.get(other.name)
        found[other.name] = greenlet.value if greenlet is not None and greenlet.successful() and greenlet.value else None
    return found


def worker_jobs(state, workers: list) -> dict[str, int | None]:
    """Jobs each worker takes (settings.jobs_for: distcc_jobs, else from its
    CPUs and memory). None for a worker that is not connected in this run
    (it cannot be asked). Each worker's resources are read once per run
    (host_resources), by whichever host asks first (the builder for its host
    list, or the worker for its --jobs)."""
    unconfigured = [w for w in workers if settings_for(w).jobs is None]
    resources = host_resources(state, unconfigured)
    jobs: dict[str, int | None] = {}
    for worker in workers:
        settings = settings_for(worker)
        found = resources.get(worker.name)
        if settings.jobs is not None:
            jobs[worker.name] = settings.jobs
        else:
            jobs[worker.name] = jobs_for(settings, found["cpus"], found["memory_bytes"]) if found else None
    return jobs
