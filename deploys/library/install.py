"""distcc installed for each role: the client on the builder; on a worker
the daemon, the compilers, the whitelist and the hardened override."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files

from deploys.library.cluster import role_of
from deploys.library.settings import settings_for
from deploys.library.worker import OVERRIDE_TEMPLATE, daemon_config
from operations import apt, distcc, systemd

# The distro's default C and C++ compilers: the same OS release on every Pi
# gives every worker the builder's gcc (validation's H-GCC compares them).
WORKER_PACKAGES = ["distcc", "gcc", "g++"]


@deploy("distcc installed")
def distcc_installed():
    """distcc installed for this host's role, and nothing started. The
    builder gets the client; a worker also gets the compilers, the
    whitelist, the log directory and the hardened override, and the unit
    enabled (so it serves again after a reboot in build mode)."""
    settings = settings_for(host)
    role = role_of(host)
    if role == "builder":
        apt.packages_installed(name="Install the distcc client", packages=["distcc"], wait_seconds=settings.apt_lock_wait)
        return
    if role != "worker":
        return
    config = daemon_config(settings)
    apt.packages_installed(name="Install distcc", packages=WORKER_PACKAGES, wait_seconds=settings.apt_lock_wait)
    distcc.masquerade_links(
        name="Whitelist the installed compilers in /usr/lib/distcc",
        compilers=list(settings.compilers) if settings.compilers else None,
    )
    files.directory(name="distccd log directory", path=settings.log_dir, user="distccd", group="adm", mode="2750")
    systemd.dropin_installed(
        name="distccd override (foreground, hardened)",
        unit=distcc.UNIT,
        template=OVERRIDE_TEMPLATE,
        context=config,
    )
    distcc.distccd_enabled(name="distccd enabled")
