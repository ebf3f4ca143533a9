"""The worker side of build mode: distccd installed, configured and serving,
and stopped again on the way back to k3s mode."""

from __future__ import annotations

from pyinfra import host, inventory, state
from pyinfra.api import deploy
from pyinfra.operations import apt, files

from deploys.library.cluster import builder_host, check_inventory, peer_name, role_of, skip_note
from deploys.library.settings import Settings, SettingsError, settings_for
from facts.host import HostResources
from facts.network import PeerRoute, Route
from operations import distcc, systemd
from operations.apt import dpkg_free
from operations.systemd import TEMPLATES

OVERRIDE_TEMPLATE = "distcc-override.conf.j2"
LOGROTATE_CONFIG = "/etc/logrotate.d/distccd-farm"

_daemon_configs: dict[tuple[int, str], dict] = {}


def distccd_config(settings: Settings, builder_route: Route, cpus: int) -> dict:
    """distccd's command line for this worker, and the override's context.

    Defaults come from the worker's own view of the network: it listens on
    the address it uses toward the builder and allows only the builder's
    address as it resolves it (/32), so nothing is open by accident."""
    listen = settings.listen or builder_route["source"]
    allow = settings.allow or (f"{builder_route['address']}/32",)
    jobs = settings.jobs or cpus
    argv = ["/usr/bin/distccd", "--daemon", "--no-detach", "--port", str(settings.port), "--listen", listen]
    for network in allow:
        argv += ["--allow", network]
    argv += [
        "--jobs", str(jobs),
        "--nice", str(settings.nice),
        "--log-file", f"{settings.log_dir}/distccd.log",
        "--log-level", settings.log_level,
    ]
    return {
        "argv": argv, "listen": listen, "allow": allow, "jobs": jobs, "log_dir": settings.log_dir,
        "tmp_size": settings.worker_tmp_size,
    }


def builder_peer(settings: Settings) -> str:
    """How this host names the builder: distcc_builder_address, else the
    builder's inventory name."""
    return settings.builder_address or peer_name(builder_host(inventory))


def unroutable_builder(peer: str) -> SettingsError:
    return SettingsError(
        f"host {host.name}: cannot work out distccd's addresses: the builder {peer} does not "
        f"resolve or has no route from this worker (setting distcc_builder_address). Fix: make "
        f"{peer} resolvable on the worker (DNS or /etc/hosts), or set distcc_builder_address "
        f"(and if needed distcc_listen) in its host data. Nothing was changed on any host."
    )


def daemon_config(settings: Settings) -> dict:
    """distccd_config() for the current host, from its facts (once per run)."""
    key = (id(state), host.name)
    if key not in _daemon_configs:
        peer = builder_peer(settings)
        route = host.get_fact(PeerRoute, peer=peer)
        if route["address"] is None or route["source"] is None:
            raise unroutable_builder(peer)
        cpus = host.get_fact(HostResources)["cpus"] if settings.jobs is None else settings.jobs
        _daemon_configs[key] = distccd_config(settings, route, cpus)
    return _daemon_configs[key]


def _worker_settings(deploy_name: str) -> Settings | None:
    check_inventory(inventory)
    settings = settings_for(host)
    if role_of(host) != "worker":
        skip_note(host, deploy_name, "workers")
        return None
    return settings


@deploy("distccd bootstrap")
def distccd_bootstrap():
    """distcc installed, the whitelist linked, the hardened override in place,
    the unit enabled; the daemon is not started (the reset starts it)."""
    settings = _worker_settings("distccd bootstrap")
    if settings is None:
        return
    config = daemon_config(settings)
    dpkg_free(name="dpkg free to install distcc", packages=["distcc", "logrotate"], wait_seconds=settings.apt_lock_wait)
    apt.packages(name="Install distcc", packages=["distcc", "logrotate"], update=True, cache_time=24 * 3600)
    distcc.masquerade_links(
        name="Whitelist the installed compilers in /usr/lib/distcc",
        compilers=list(settings.compilers) if settings.compilers else None,
    )
    files.directory(name="distccd log directory", path=settings.log_dir, user="distccd", group="adm", mode="2750")
    files.template(
        name="distccd log rotation",
        src=f"{TEMPLATES}/distccd-logrotate.j2",
        dest=LOGROTATE_CONFIG,
        user="root",
        group="root",
        mode="644",
        log_file=f"{settings.log_dir}/distccd.log",
    )
    systemd.dropin_installed(
        name="distccd override (foreground, hardened)",
        unit=distcc.UNIT,
        template=OVERRIDE_TEMPLATE,
        context=config,
    )
    distcc.distccd_enabled(name="distccd enabled (not started)")


@deploy("worker distccd reset")
def worker_distccd_reset(stop_k3s: bool = True, install_override: bool = True):
    """k3s-agent stopped, stale compilers killed, the override current, and
    distccd serving with exactly the configured command line. A healthy
    distccd with the right configuration is left alone.

    + stop_k3s, install_override: False when the caller has just done that
      (the mode switch), which saves each its round trips per worker"""
    settings = _worker_settings("worker distccd reset")
    if settings is None:
        return
    config = daemon_config(settings)
    address, port, argv = config["listen"], settings.port, config["argv"]
    if stop_k3s:
        systemd.units_stopped(name="Stop the k3s units", units=list(settings.k3s_units))
    distcc.distccd_stopped_for_reset(
        name="Stop distccd when unhealthy", argv=argv, address=address, port=port, force=settings.force_restart
    )
    distcc.stale_compilers_killed(name="Kill stale distccd and cc1 processes")
    if install_override:
        systemd.dropin_installed(
            name="distccd override (foreground, hardened)", unit=distcc.UNIT, template=OVERRIDE_TEMPLATE, context=config
        )
    distcc.distccd_running(name="distccd active and listening", argv=argv, address=address, port=port)


@deploy("worker k3s mode")
def worker_k3s_mode():
    """distccd stopped (still enabled), its leftovers killed, k3s units started."""
    settings = _worker_settings("worker k3s mode")
    if settings is None:
        return
    distcc.distccd_stopped(name="Stop distccd")
    distcc.stale_compilers_killed(name="Kill stale distccd and cc1 processes")
