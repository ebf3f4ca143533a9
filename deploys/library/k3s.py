"""k3s on every node: stopped for build mode (its pods first, gracefully),
started again for k3s mode and waited for until the cluster is back."""

from __future__ import annotations

from pyinfra import host, logger, state
from pyinfra.api import deploy

from deploys.library.build_guard import refuse_under_running_build
from deploys.library.cluster import role_of, run_cache
from deploys.library.settings import Settings, settings_for
from facts.k3s import K3sNodeName, K3sNodes, K3sPods
from facts.systemd import K3sUnits
from operations import k3s
from operations._observed import BODY, BOTH, observed


def k3s_reads(settings: Settings) -> list:
    """What k3s_stopped reads: the units (also while loading, for the
    server warning) and the pods (named by --dry)."""
    return [(K3sUnits, {"units": list(settings.k3s_units)}, BOTH), (K3sPods, {})]


def k3s_back_reads(settings: Settings) -> list:
    """What k3s_started and k3s_ready read: the units, the node's name
    (while loading, for the server's Ready check) and the server's nodes."""
    return [(K3sUnits, {"units": list(settings.k3s_units)}, BOTH), (K3sNodeName, {}, BODY), (K3sNodes, {})]


def warn_of_a_server(units: dict) -> None:
    """A k3s server in the inventory goes down with build mode: the API
    (kubectl, the cluster's controllers), and with it what the cluster
    serves. Said while loading, so --dry and the prompt show it."""
    servers = [u for u in k3s.SERVER_UNITS if u in units and units[u]["active"] not in ("inactive", "failed")]
    if servers:
        logger.warning(
            f"{host.print_prefix}runs a k3s server ({', '.join(servers)}): until k3s mode the cluster's API is down,\n"
            f"    and with the pods go in-cluster DNS and storage replicas (docs/safety.md)"
        )


@deploy("k3s stopped")
def k3s_stopped():
    """k3s and its pods stopped on the builder and on every worker, first of
    all, so that pods let go of CPU and memory before apt runs; its units
    disabled, so a reboot in build mode does not start it again."""
    if role_of(host) is None:
        return
    settings = settings_for(host)
    warn_of_a_server(observed(K3sUnits, units=list(settings.k3s_units))["units"])
    k3s.k3s_stopped(
        name="Stop k3s and its pods, disable its units",
        units=list(settings.k3s_units),
        grace_seconds=settings.pod_grace,
    )


@deploy("k3s started")
def k3s_started():
    """The k3s units enabled and started on every node without waiting on
    one another, then waited for until each is active and, where a server's
    API answers, every node of the inventory is Ready (k3s mode)."""
    if role_of(host) is None:
        return
    settings = settings_for(host)
    units = list(settings.k3s_units)
    stopped = k3s.units_to_start(observed(K3sUnits, units=units)["units"])
    if stopped:
        refuse_under_running_build(
            settings, f"start k3s on this host ({', '.join(stopped)})",
            "k3s and its pods take CPU and memory from it",
        )
    cluster = run_cache(state, "k3s back")
    cluster.setdefault("node_names", {})
    cluster.setdefault("started_at", {})
    name = observed(K3sNodeName)
    if name and observed(K3sUnits, units=units)["units"]:
        # A node is waited for only where k3s is installed.
        cluster["node_names"][host.name] = name
    k3s.k3s_started(name="Enable and start the k3s units", units=units, started_at=cluster["started_at"])
    k3s.k3s_ready(
        name="Wait until k3s is back", units=units, timeout_seconds=settings.k3s_timeout, cluster=cluster
    )
