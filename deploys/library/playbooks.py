"""The seed's playbooks and the way back, each composed from the same small
deploys (k3s stopped, distcc installed, builder client only, worker serving;
worker stopped, builder tmpfs released, k3s started), so that no playbook
repeats another's work and none needs to be told what another already did.
Each runnable file in deploys/ calls one of these.

Every playbook first checks the inventory's roles and this host's settings,
while the deploy file loads, so bad input is refused before any host changes.
"""

from __future__ import annotations

from pyinfra import host, inventory, state
from pyinfra.api import deploy

from deploys.library.build_guard import build_reads
from deploys.library.builder import (
    builder_client_only,
    builder_tmpfs_released,
    client_only_reads,
    tmpfs_released_reads,
)
from deploys.library.cluster import role_of, settings_for_role
from deploys.library.install import distcc_installed, installed_reads
from deploys.library.k3s import k3s_back_reads, k3s_reads, k3s_started, k3s_stopped
from deploys.library.run_lock import hold_run_lock
from deploys.library.settings import Settings
from deploys.library.worker import config_reads, serving_reads, stopped_reads, worker_serving, worker_stopped
from operations._observed import plan_reads


def planned_reads(settings: Settings, role: str | None, *parts: str) -> list:
    """What the named small deploys read on a host of this role: plan()'s
    mapping, which needs no host (only the inventory, for a worker's route
    to the builder), so that tests/unit/test_planned_reads.py can hold it
    against every read the playbooks make."""
    reads = {
        "k3s": lambda: k3s_reads(settings),
        "k3s back": lambda: k3s_back_reads(settings),
        "installed": lambda: installed_reads(settings, role) + (config_reads(settings) if role == "worker" else []),
        "client only": lambda: client_only_reads(settings) if role == "builder" else [],
        "serving": lambda: serving_reads(settings) if role == "worker" else [],
        "worker stopped": lambda: stopped_reads(settings) if role == "worker" else [],
        "tmpfs released": lambda: tmpfs_released_reads(settings) if role == "builder" else [],
        "build guard": lambda: build_reads(settings),
    }
    return [read for part in parts for read in reads[part]()]


def plan(settings: Settings, *parts: str) -> None:
    """Declare what the small deploys this playbook runs will read on this
    host, so that it is read in one round trip while nothing changes (see
    operations/_observed.py). Each name is one small deploy."""
    plan_reads(host, planned_reads(settings, role_of(host), *parts))


@deploy("distccd bootstrap")
def distccd_bootstrap():
    """Workers: distcc and the compilers installed, the whitelist linked,
    the hardened override in place, the unit enabled; the daemon is not
    started (the reset starts it)."""
    settings = settings_for_role(host, inventory, "distccd bootstrap", "worker")
    hold_run_lock(state, inventory, "distccd bootstrap")
    if settings is not None:
        plan(settings, "installed")
        distcc_installed()


@deploy("builder distccd guard")
def builder_distccd_guard():
    """Builder: k3s stopped (in build mode the builder runs only the distcc
    client), no distccd, the tmpfs at its integrity, and the build user's
    client environment."""
    settings = settings_for_role(host, inventory, "builder distccd guard", "builder")
    hold_run_lock(state, inventory, "builder distccd guard")
    if settings is not None:
        plan(settings, "k3s", "installed", "client only", "build guard")
        k3s_stopped()
        distcc_installed()
        builder_client_only()


@deploy("worker distccd reset")
def worker_distccd_reset():
    """Workers: k3s stopped, distcc and the override current, stale compilers
    killed, and distccd serving with exactly the configured command line. A
    healthy distccd with the right configuration is left alone."""
    settings = settings_for_role(host, inventory, "worker distccd reset", "worker")
    hold_run_lock(state, inventory, "worker distccd reset")
    if settings is not None:
        plan(settings, "k3s", "installed", "serving", "build guard")
        k3s_stopped()
        distcc_installed()
        worker_serving()


@deploy("mode switch")
def mode_switch():
    """Enter DISTCC BUILD MODE from any state."""
    settings = settings_for_role(host, inventory, "mode switch", "builder", "worker")
    hold_run_lock(state, inventory, "mode switch")
    if settings is not None:
        plan(settings, "k3s", "installed", "client only", "serving", "build guard")
        k3s_stopped()
        distcc_installed()
        builder_client_only()
        worker_serving()


@deploy("k3s mode")
def k3s_mode():
    """Leave build mode: distccd stopped on the workers, the builder's tmpfs
    unmounted only when empty, the k3s units started again."""
    settings = settings_for_role(host, inventory, "k3s mode", "builder", "worker")
    hold_run_lock(state, inventory, "k3s mode")
    if settings is not None:
        plan(settings, "worker stopped", "tmpfs released", "k3s back", "build guard")
        worker_stopped()
        builder_tmpfs_released()
        k3s_started()
