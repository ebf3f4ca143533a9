"""The two cluster modes, composed from the role deploys: DISTCC BUILD MODE
(k3s stopped, the builder a distcc client with its tmpfs, every worker serving
distccd) and k3s mode (the way back)."""

from __future__ import annotations

from pyinfra import host, inventory
from pyinfra.api import deploy

from deploys.library.builder import builder_distccd_guard, builder_k3s_mode
from deploys.library.cluster import check_inventory, role_of, skip_note
from deploys.library.settings import settings_for
from deploys.library.worker import distccd_bootstrap, worker_distccd_reset, worker_k3s_mode
from operations import systemd


@deploy("mode switch")
def mode_switch():
    """Enter DISTCC BUILD MODE from any state."""
    check_inventory(inventory)
    settings = settings_for(host)
    if role_of(host) is None:
        skip_note(host, "mode switch", "builder and workers")
        return
    # First, so that pods let go of CPU and memory before apt runs.
    systemd.units_stopped(name="Stop the k3s units", units=list(settings.k3s_units))
    distccd_bootstrap()
    builder_distccd_guard(stop_k3s=False)
    # The bootstrap has just installed the override (and reloaded systemd).
    worker_distccd_reset(stop_k3s=False, install_override=False)


@deploy("k3s mode")
def k3s_mode():
    """Leave build mode: distccd stopped on the workers, the builder's tmpfs
    unmounted only when empty, the k3s units started again."""
    check_inventory(inventory)
    settings = settings_for(host)
    if role_of(host) is None:
        skip_note(host, "k3s mode", "builder and workers")
        return
    worker_k3s_mode()
    builder_k3s_mode()
    systemd.units_started(name="Start the k3s units", units=list(settings.k3s_units))
