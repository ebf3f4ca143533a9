"""k3s on every node: stopped for build mode, started again for k3s mode."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from deploys.library.cluster import role_of
from deploys.library.settings import settings_for
from operations import systemd


@deploy("k3s stopped")
def k3s_stopped():
    """The k3s units stopped on the builder and on every worker, first of
    all, so that pods let go of CPU and memory before apt runs."""
    if role_of(host) is None:
        return
    systemd.units_stopped(name="Stop the k3s units", units=list(settings_for(host).k3s_units))


@deploy("k3s started")
def k3s_started():
    """The k3s units started again (k3s mode)."""
    if role_of(host) is None:
        return
    systemd.units_started(name="Start the k3s units", units=list(settings_for(host).k3s_units))
