"""k3s on every node: stopped for build mode, started again for k3s mode."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from deploys.library.build_guard import refuse_under_running_build
from deploys.library.cluster import role_of
from deploys.library.settings import Settings, settings_for
from facts.systemd import K3sUnits
from operations import k3s
from operations._observed import BOTH, observed


def k3s_reads(settings: Settings) -> list:
    """What k3s_stopped and k3s_started read."""
    # Read by the deploy's code too: k3s_started asks the build guard first.
    return [(K3sUnits, {"units": list(settings.k3s_units)}, BOTH)]


@deploy("k3s stopped")
def k3s_stopped():
    """k3s and its pods stopped on the builder and on every worker, first of
    all, so that pods let go of CPU and memory before apt runs; its units
    disabled, so a reboot in build mode does not start it again."""
    if role_of(host) is None:
        return
    k3s.k3s_stopped(name="Stop k3s and its pods, disable its units", units=list(settings_for(host).k3s_units))


@deploy("k3s started")
def k3s_started():
    """The k3s units enabled and started again (k3s mode)."""
    if role_of(host) is None:
        return
    settings = settings_for(host)
    stopped = k3s.units_to_start(observed(K3sUnits, units=list(settings.k3s_units))["units"])
    if stopped:
        refuse_under_running_build(
            settings, f"start k3s on this host ({', '.join(stopped)})",
            "k3s and its pods take CPU and memory from it",
        )
    k3s.k3s_started(name="Enable and start the k3s units", units=list(settings_for(host).k3s_units))
