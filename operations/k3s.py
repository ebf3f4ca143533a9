"""Operations on k3s: stopped for build mode with its pods, and started again.

k3s's units have KillMode=process, so `systemctl stop k3s` leaves
containerd, the containerd shims and every pod running, holding the CPU and
memory a build needs. The pods are stopped first the way Kubernetes stops
them (SIGTERM, a grace period, then SIGKILL), through k3s's own container
runtime; k3s-killall.sh, which k3s installs for exactly this, then ends what
is left. The units are disabled in build mode and enabled again in k3s mode,
so that a node that reboots comes back in the mode it was in.

On the way back the units are started without waiting on each other (a k3s
server with embedded etcd is ready only once a quorum of its peers runs, so
servers started one at a time can wait for ever), and then waited for:
every unit active and, where a server's API answers, every node Ready.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import gevent
from pyinfra import host, logger, state
from pyinfra.api import FunctionCommand, QuoteString, StringCommand, operation

from facts._templates import render_script
from facts.k3s import K3S_PATHS, K3sNodes, K3sPods, PodStopReport, pod_names
from facts.systemd import K3S_NAMES, SHIM_NAMES, K3sUnits, UnitsPresent
from operations._observed import observed
from operations._printed import logged, printf_wrapped

# Processes killed by kill -9 leave the process table once reaped; give that
# a few seconds before calling them left over.
_SETTLE_TICKS = 25
# Where the pods' stop writes one line per container (read back to report).
POD_STOP_REPORT = "/run/distcc-farm/k3s-pods-stopped"
# The units whose node runs a k3s server (the API, and etcd's members).
SERVER_UNITS = ("k3s", "k3s-server")
# How long the way back waits between two looks at a node: soon at first
# (a node that was only stopped is back in a second or two), then every 2 s
# (a Pi's k3s takes tens of seconds to be Ready, and each look costs it a
# k3s kubectl).
_POLL_SECONDS = (0.5, 0.5, 1.0, 1.0, 2.0)


def poll_delays() -> Iterator[float]:
    yield from _POLL_SECONDS[:-1]
    while True:
        yield _POLL_SECONDS[-1]


def _services(units: Iterable[str]) -> list[QuoteString]:
    return [QuoteString(f"{u}.service") for u in units]


def leftover_fix(killall: str | None) -> str:
    """The fix named when a k3s process or a containerd shim (a pod) still
    runs after k3s was stopped."""
    if killall:
        return (
            f"{killall} ran, so something started them again: look for a k3s unit or a script that is not "
            f"in distcc_k3s_units (systemctl list-units 'k3s*'; ps -ef), stop it, then run the mode switch again."
        )
    return (
        "k3s-killall.sh, which k3s's install script writes to /usr/local/bin to stop them, is not on this "
        "node: reinstall k3s (or copy k3s-killall.sh back) and run the mode switch again."
    )


def stopped_command(
    enabled: list[str], running: list[str], pods: bool, grace_seconds: int, killall: str | None, stop: bool = True,
) -> StringCommand:
    """k3s stopped in one command (templates/k3s-stopped.sh.j2): the enabled
    units disabled; with stop, the running units stopped and, with pods,
    every pod's containers at once (SIGTERM, then SIGKILL after the grace
    period; templates/k3s-pods-stopped.sh.j2); then k3s-killall.sh, and a
    failure that names what is left and the fix while anything is."""
    context = {
        "enabled": [f"{u}.service" for u in enabled], "stop": stop, "pods": pods,
        "running": [f"{u}.service" for u in running], "units": [f"{u}.service" for u in running],
        "grace": int(grace_seconds), "report": POD_STOP_REPORT, "k3s_paths": K3S_PATHS,
        "killall": killall, "ticks": _SETTLE_TICKS,
        # A printf argument a line, within 100 columns; the shell fills in
        # the two counts.
        "leftover_message": " ".join(printf_wrapped(
            "k3s is stopped but $k3s_left k3s processes and $shims containerd-shim processes (pods) still run, "
            f"holding the CPU and memory the build needs. Fix: {leftover_fix(killall)}", expand=True,
        )[2:]),
        "shim_names": SHIM_NAMES, "k3s_names": K3S_NAMES,
    }
    return StringCommand(render_script("k3s-stopped.sh.j2", context))


def pod_outcomes(report: dict, grace_seconds: int) -> list[str]:
    """One line per pod from the stop's report: stopped in time, or killed
    when the grace period ran out (a container that ended on SIGKILL, 137)."""
    lines = []
    for pod, containers in sorted(report["pods"].items()):
        seconds = max((c["seconds"] for c in containers if c["seconds"] is not None), default=None)
        took = f"{seconds} s" if seconds is not None else "an unknown time"
        codes = ", ".join(str(c["exit"]) if c["exit"] is not None else "?" for c in containers)
        if any(c["exit"] == 137 for c in containers):
            lines.append(f"pod {pod} killed after the {grace_seconds} s grace (exit {codes})")
        else:
            lines.append(f"pod {pod} stopped in time, in {took} (exit {codes})")
    if report["unlisted"]:
        lines += ["pods not stopped gracefully: k3s-killall.sh kills them", f"k3s crictl: {report['unlisted']}"]
    return lines


def report_stopped_pods(state, host, grace_seconds: int) -> bool:
    """Print what the pods' stop did on this node, a line per pod."""
    for line in pod_outcomes(host.get_fact(PodStopReport, path=POD_STOP_REPORT), grace_seconds):
        logger.info(f"{host.print_prefix}{line}")
    return True


@operation()
def k3s_stopped(units: list[str], grace_seconds: int = 30):
    """
    k3s stopped with its pods, and its units disabled, on a node that has
    them; a missing unit is not an error.

    + units: unit names without ``.service``, e.g. ``["k3s", "k3s-agent"]``
    + grace_seconds: how long a pod's containers get between SIGTERM and
      SIGKILL, as Kubernetes' terminationGracePeriodSeconds (default 30)

    While a pod runs, the running units are stopped first (kubelet with
    them, so nothing restarts a pod), then every pod's containers at once
    through `k3s crictl stop --timeout`; each pod is named, with whether it
    stopped in time or was killed. preStop hooks do not run: kubelet runs
    them. Then k3s-killall.sh (k3s's own) stops what is left: the units,
    containerd and the shims. Without it, the running units are stopped and
    leftover pods make the operation fail with the fix.

    **Example:**

    .. code:: python

        k3s.k3s_stopped(units=["k3s", "k3s-server", "k3s-agent"], grace_seconds=30)
    """
    found: UnitsPresent = observed(K3sUnits, units=list(units))
    pods = observed(K3sPods)
    present = found["units"]
    running = sorted(u for u, s in present.items() if s["active"] not in ("inactive", "failed"))
    enabled = sorted(u for u, s in present.items() if s["enabled_state"] == "enabled")
    leftovers = found["containerd_shims"] + found["k3s_processes"]
    if not running and not enabled and not leftovers:
        host.noop(f"k3s stopped and disabled, no pod left ({', '.join(present) or 'no k3s unit installed'})")
        return
    if not state.is_executing:
        # The plan (--dry, or before the prompt) names what will go down.
        for name in pod_names(pods):
            logger.info(f"{host.print_prefix}will stop pod {name} (SIGTERM, then SIGKILL after {grace_seconds} s)")
    stop = bool(running or leftovers)
    yield stopped_command(enabled, running, bool(pods["containers"]), grace_seconds, found["killall"], stop=stop)
    if not stop:
        return
    if pods["containers"]:
        yield FunctionCommand(report_stopped_pods, (grace_seconds,), {})
    elif pods["unlisted"] and state.is_executing:
        for line in pod_outcomes({"pods": {}, "unlisted": pods["unlisted"]}, grace_seconds):
            logger.warning(f"{host.print_prefix}{line}")


def mark_started(state, host, started_at: dict) -> bool:
    started_at[host.name] = time.monotonic()
    return True


def units_to_start(present: dict) -> list[str]:
    """The k3s units k3s_started starts: present, stopped or failed, not masked."""
    return sorted(u for u, s in present.items() if s["active"] in ("inactive", "failed") and s["enabled_state"] != "masked")


@operation()
def k3s_started(units: list[str], started_at: dict | None = None):
    """
    k3s's units enabled and started again where they exist, without waiting
    for them (k3s_ready waits); a missing unit is not an error. A masked
    unit is left masked (someone meant it).

    + units: unit names without ``.service``
    + started_at: where the moment of the start is kept, by host name, for
      k3s_ready to time each node from

    `systemctl start --no-block`: a k3s server's unit is Type=notify and,
    with embedded etcd, ready only once a quorum of its peer servers runs,
    so a start that waited would wait for the next server's start, which
    --parallel 1 runs only after it.

    **Example:**

    .. code:: python

        k3s.k3s_started(units=["k3s-agent"])
    """
    present = observed(K3sUnits, units=list(units))["units"]
    disabled = sorted(u for u, s in present.items() if s["enabled_state"] == "disabled")
    stopped = units_to_start(present)
    if not disabled and not stopped:
        host.noop(f"k3s started and enabled ({', '.join(present) or 'no k3s unit installed'})")
        return
    if disabled:
        yield StringCommand("systemctl", "enable", "--quiet", *_services(disabled))
    if stopped:
        yield StringCommand("systemctl", "reset-failed", *_services(stopped), "2>/dev/null;",
                            "systemctl", "start", "--no-block", *_services(stopped))
        if started_at is not None:
            yield FunctionCommand(mark_started, (started_at,), {})


def unit_fix(node: str, units: Iterable[str]) -> str:
    names = " ".join(f"{u}.service" for u in units)
    return f"look on {node}: sudo systemctl status {names}; sudo journalctl -u {names.split()[0]} -n 50"


def units_waiting(present: dict) -> dict[str, str]:
    """The units that are not up yet (a masked one is not waited for)."""
    return {u: s["active"] for u, s in present.items() if s["active"] != "active" and s["enabled_state"] != "masked"}


def wait_for_units(host, units: list[str], since: float, deadline: float) -> bool:
    """Until every k3s unit of this node is active; False (after saying why)
    when one failed or the deadline passed."""
    delays = poll_delays()
    while True:
        waiting = units_waiting(host.get_fact(K3sUnits, units=list(units))["units"])
        now = time.monotonic()
        if not waiting:
            logger.info(f"{host.print_prefix}k3s active after {now - since:.0f} s")
            return True
        failed = sorted(u for u, active in waiting.items() if active == "failed")
        if failed or now > deadline:
            what = ", ".join(f"{u} {a}" for u, a in sorted(waiting.items()))
            cause = "failed" if failed else f"not active after {now - since:.0f} s (setting distcc_k3s_timeout)"
            logger.error(host.print_prefix + logged(f"k3s {cause}: {what}. Fix: {unit_fix(host.name, failed or waiting)}"))
            return False
        gevent.sleep(next(delays))


def wait_for_nodes(state, host, nodes: dict[str, str], started_at: dict, since: float, deadline: float) -> bool:
    """On a server whose API answers: until every inventory node (host name
    -> node name) is Ready; each node's time is from its own start. A node
    whose host failed in this run (so its k3s may not have been started) is
    named and not waited for."""
    pending = dict(nodes)
    error = None
    delays = poll_delays()
    while pending:
        for failed in sorted(h.name for h in state.failed_hosts if h.name in pending):
            logger.warning(host.print_prefix + logged(f"node {pending.pop(failed)} not waited for: {failed} failed in this run"))
        if not pending:
            break
        listed = host.get_fact(K3sNodes)
        now = time.monotonic()
        if listed["answered"]:
            for name, node in sorted(pending.items()):
                if listed["ready"].get(node):
                    logger.info(f"{host.print_prefix}node {node} Ready after {now - started_at.get(name, since):.0f} s")
                    del pending[name]
        error = listed["error"]
        if pending and now > deadline:
            late = ", ".join(f"{node} ({name})" for name, node in sorted(pending.items()))
            why = f"the API did not answer ({error})" if not listed["answered"] else "not Ready"
            logger.error(host.print_prefix + logged(
                f"k3s nodes {late}: {why} after {now - since:.0f} s (setting distcc_k3s_timeout). Look: sudo k3s "
                f"kubectl describe node NAME on {host.name}, and sudo journalctl -u k3s-agent -n 50 (or -u k3s) on "
                f"that node"
            ))
            return False
        if pending:
            gevent.sleep(next(delays))
    return True


def wait_until_back(state, host, units: list[str], timeout: int, cluster: dict) -> bool:
    """This node's units active; then, on the first server to get here, the
    inventory's nodes Ready. Times are printed per node."""
    since = cluster["started_at"].get(host.name, time.monotonic())
    deadline = since + timeout
    if not wait_for_units(host, units, since, deadline):
        return False
    present = host.get_fact(K3sUnits, units=list(units))["units"]
    if not any(u in present for u in SERVER_UNITS) or cluster.setdefault("reporter", host.name) != host.name:
        return True
    return wait_for_nodes(state, host, cluster["node_names"], cluster["started_at"], since, deadline)


@operation(is_idempotent=False)
def k3s_ready(units: list[str], timeout_seconds: int, cluster: dict):
    """
    Wait, up to the timeout, until this node's k3s units are active and,
    on the first k3s server that gets here, until every node of the
    inventory is Ready in the server's API (`k3s kubectl get nodes`); print
    each node's time, or name the node that did not come back and the
    command to look at it (and fail).

    + units: unit names without ``.service``
    + timeout_seconds: how long a node may take, from its start
    + cluster: shared by the run's hosts: ``node_names`` (host name -> node
      name, the inventory's nodes), ``started_at`` (k3s_started's moments)

    An agent's unit is Type=exec, active as soon as it runs: only the API's
    Ready says the node is back. With no server in the inventory, the units
    are all there is to judge.

    **Example:**

    .. code:: python

        k3s.k3s_ready(units=["k3s-agent"], timeout_seconds=600, cluster=shared)
    """
    present = observed(K3sUnits, units=list(units))["units"]
    waiting = units_waiting(present)
    if not present:
        host.noop("no k3s unit installed")
        return
    if not waiting and any(u in present for u in SERVER_UNITS):
        listed = observed(K3sNodes)
        # The inventory's nodes known so far: every one once the deploy
        # file has loaded on each host, which is so when this executes.
        late = [n for n in cluster["node_names"].values() if not listed["ready"].get(n)]
        if listed["answered"] and not late:
            host.noop(f"k3s active, and the API has every node Ready ({len(listed['ready'])} nodes)")
            return
    elif not waiting:
        host.noop(f"k3s active ({', '.join(sorted(present))})")
        return
    yield FunctionCommand(wait_until_back, (list(units), timeout_seconds, cluster), {})
