"""The seed's playbooks and the way back, each composed from the same small
deploys (k3s stopped, distcc installed, builder client only, worker serving;
worker stopped, builder tmpfs released, k3s started), so that no playbook
repeats another's work and none needs to be told what another already did.
Each runnable file in deploys/ calls one of these.

Every playbook first checks the inventory's roles and this host's settings,
while the deploy file loads, so bad input is refused before any host changes.
"""

from __future__ import annotations

from pyinfra import host, inventory
from pyinfra.api import deploy

from deploys.library.builder import builder_client_only, builder_tmpfs_released
from deploys.library.cluster import settings_for_role
from deploys.library.install import distcc_installed
from deploys.library.k3s import k3s_started, k3s_stopped
from deploys.library.worker import worker_serving, worker_stopped


@deploy("distccd bootstrap")
def distccd_bootstrap():
    """Workers: distcc and the compilers installed, the whitelist linked,
    the hardened override in place, the unit enabled; the daemon is not
    started (the reset starts it)."""
    if settings_for_role(host, inventory, "distccd bootstrap", "worker"):
        distcc_installed()


@deploy("builder distccd guard")
def builder_distccd_guard():
    """Builder: k3s stopped (in build mode the builder runs only the distcc
    client), no distccd, the tmpfs at its integrity, and the build user's
    client environment."""
    if settings_for_role(host, inventory, "builder distccd guard", "builder"):
        k3s_stopped()
        distcc_installed()
        builder_client_only()


@deploy("worker distccd reset")
def worker_distccd_reset():
    """Workers: k3s stopped, distcc and the override current, stale compilers
    killed, and distccd serving with exactly the configured command line. A
    healthy distccd with the right configuration is left alone."""
    if settings_for_role(host, inventory, "worker distccd reset", "worker"):
        k3s_stopped()
        distcc_installed()
        worker_serving()


@deploy("mode switch")
def mode_switch():
    """Enter DISTCC BUILD MODE from any state."""
    if settings_for_role(host, inventory, "mode switch", "builder", "worker"):
        k3s_stopped()
        distcc_installed()
        builder_client_only()
        worker_serving()


@deploy("k3s mode")
def k3s_mode():
    """Leave build mode: distccd stopped on the workers, the builder's tmpfs
    unmounted only when empty, the k3s units started again."""
    if settings_for_role(host, inventory, "k3s mode", "builder", "worker"):
        worker_stopped()
        builder_tmpfs_released()
        k3s_started()
