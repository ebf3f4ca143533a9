"""No deploy stops or restarts distccd, unmounts or remounts the build tree,
or starts k3s while a build runs, unless distcc_build_running_ok says so.

A build in another terminal is the normal case, and distcc hides what such
a deploy does to it: a remote job cut off is compiled again on the builder
(exit 0, only slower), or fails the build with fallback off. So each small
deploy that would do one of those things asks here first, while the deploy
file loads, and is refused before any host changes, naming what runs and
where. A deploy that would do none of them (a mode switch into the mode the
cluster is in) goes ahead, build or not.

What counts as a running build (facts/distcc.py, BuildProcesses): on the
builder, a distcc client or distcc-pump's include server anywhere, or make,
a compiler driver or cc1 working under the tmpfs or a distcc_build_dirs
directory; on a worker, a cc1 of a distccd job or a connection established
to distccd's port. A worker's deploy also reads the builder's, once per run
(the builder's own bundle serves it when it is read already).
"""

from __future__ import annotations

import gevent
from pyinfra import host, state
from pyinfra.context import ctx_config, ctx_host

from deploys.library.cluster import builder_host, role_of, run_cache
from deploys.library.settings import Settings, settings_for
from facts.distcc import BuildActivity, BuildProcesses, is_include_server
from operations._observed import BODY, current, observed
from operations._printed import Refusal

SHOWN = 6
ARGS_SHOWN = 48


class BuildRunningRefusal(Refusal):
    """A deploy would act under a build that runs."""


def build_reads(settings: Settings) -> list:
    """What the guard reads on this host, while the deploy loads."""
    return [(BuildProcesses, {"port": settings.port}, BODY)]


def build_directories(settings: Settings) -> tuple[str, ...]:
    return (settings.tmpfs_path, *settings.build_dirs)


def _under(path: str | None, directories: tuple[str, ...]) -> bool:
    return bool(path) and any(path == d or path.startswith(f"{d}/") for d in directories)


def _args(text: str) -> str:
    return text if len(text) <= ARGS_SHOWN else text[: ARGS_SHOWN - 3] + "..."


def builder_build(activity: BuildActivity, directories: tuple[str, ...]) -> list[str]:
    """The builder's build processes, each with pid, command and directory."""
    found = []
    for proc in activity["processes"]:
        if proc["comm"] == "distcc" or is_include_server(proc) or _under(proc["cwd"], directories):
            found.append(f"pid {proc['pid']} {_args(proc['args'])} in {proc['cwd'] or 'an unknown directory'}")
    return found


def jobs_in_flight(activity: BuildActivity) -> list[str]:
    """A worker's remote jobs: cc1 under distccd, connections to its port."""
    found = [
        f"pid {job['pid']} {job['compiler']} (a job of distccd pid {job['distccd_pid']}) in distccd's /tmp"
        for job in activity["remote_jobs"]
    ]
    peers = sorted({c["peer"].rsplit(":", 1)[0] for c in activity["connections"]})
    if activity["connections"]:
        found.append(f"{len(activity['connections'])} connections to distccd from {', '.join(peers)}")
    return found


def _builder_activity(settings: Settings) -> BuildActivity | None:
    """The builder's BuildProcesses, read once per run by whichever worker
    asks first, from a greenlet of its own (as cluster.host_resources)."""
    builder = builder_host(state.inventory)
    reads = run_cache(state, "builder build activity")
    if builder.name not in reads and builder in state.inventory.get_active_hosts():
        run_state = current(state)

        def read():
            with ctx_config.use(run_state.config.copy()), ctx_host.use(builder):
                return observed(BuildProcesses, host=builder, port=settings_for(builder).port)

        reads[builder.name] = gevent.spawn(read)
    greenlet = reads.get(builder.name)
    if greenlet is None:
        return None
    greenlet.join()
    return greenlet.value if greenlet.successful() else None


def running_build(settings: Settings) -> list[tuple[str, list[str]]]:
    """(host, what runs there) for every host whose build this host's
    deploy would disturb; empty when no build runs."""
    own = observed(BuildProcesses, port=settings.port)
    if role_of(host) == "builder":
        found = builder_build(own, build_directories(settings))
        return [(host.name, found)] if found else []
    running = []
    builder = builder_host(state.inventory)
    theirs = _builder_activity(settings)
    if theirs is not None:
        found = builder_build(theirs, build_directories(settings_for(builder)))
        if found:
            running.append((builder.name, found))
    found = jobs_in_flight(own)
    if found:
        running.append((host.name, found))
    return running


def _listed(items: list[str]) -> str:
    shown = items[:SHOWN]
    more = f"; and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return "; ".join(shown) + more


def refuse_under_running_build(settings: Settings, action: str, consequence: str) -> None:
    """Refuse, naming what runs, when a build runs and this host's deploy
    is about to `action`; `consequence` is what that does to the build.
    Called only when the deploy would really do it."""
    if settings.build_running_ok:
        return
    running = running_build(settings)
    if not running:
        return
    where = " ".join(f"On {name}: {_listed(found)}." for name, found in running)
    raise BuildRunningRefusal(
        f"host {host.name}: a build is running, and this deploy would {action}. {where} "
        f"Going ahead now, {consequence}. Fix: wait for the build to end (or stop it), then run the deploy "
        f"again; or set distcc_build_running_ok=True (e.g. --data distcc_build_running_ok=True) to go ahead "
        f"anyway. Nothing was changed on any host."
    )
