"""The builder side of build mode: never a distccd, the build tree's tmpfs,
and the client environment of the build user; and the way back."""

from __future__ import annotations

from pathlib import Path

from pyinfra import host, inventory, logger, state
from pyinfra.api import deploy
from pyinfra.api.exceptions import PyinfraError
from pyinfra.operations import apt, files

from deploys.library.cluster import check_inventory, peer_name, role_of, skip_note, worker_hosts, worker_jobs
from deploys.library.settings import Settings, SettingsError, settings_for
from facts.mounts import MountPoint, MountPointStatus
from facts.users import LoginEnvironment
from operations import distcc, mounts, systemd
from operations.apt import dpkg_free


class DataSafetyRefusal(PyinfraError):
    """The builder's state makes a change unsafe (files would be hidden)."""


TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
PROFILE_SCRIPT = "/etc/profile.d/distcc-build.sh"


def _builder_settings(deploy_name: str) -> tuple[Settings, MountPointStatus] | None:
    """This builder's settings and its tmpfs mount point, refused while the
    deploy file loads (so before any host changes) when they are unsafe."""
    check_inventory(inventory)
    settings = settings_for(host)
    if role_of(host) != "builder":
        skip_note(host, deploy_name, "builder")
        return None
    status = host.get_fact(MountPoint, path=settings.tmpfs_path)
    memory = status["memory_bytes"]
    if memory and mounts.parse_size(settings.tmpfs_size) > memory:
        raise SettingsError(
            f"host {host.name}: setting distcc_tmpfs_size = {settings.tmpfs_size!r} is larger than the "
            f"builder's memory ({memory // 1024**2} MiB); a tmpfs that size would push the build into swap "
            f"or the OOM killer. Fix: set distcc_tmpfs_size below that, e.g. half of it. Nothing was changed "
            f"on any host."
        )
    return settings, status


def host_list(settings: Settings) -> list[str]:
    """HOST:PORT/LIMIT for every worker the builder can send jobs to."""
    workers = worker_hosts(inventory)
    jobs = worker_jobs(state, workers)
    entries = []
    for worker in workers:
        limit = jobs[worker.name]
        if limit is None:
            logger.warning(
                f"{host.print_prefix}worker {worker.name} is not reachable in this run and has no distcc_jobs; "
                f"it is left out of the host list until the next run reaches it"
            )
            continue
        entries.append(f"{peer_name(worker)}:{settings_for(worker).port}/{limit}")
    return entries


@deploy("builder distccd guard")
def builder_distccd_guard(stop_k3s: bool = True):
    """No distccd on the builder, the tmpfs at its integrity, and the build
    user's client environment (host list, masquerade PATH, fallback policy).
    k3s is stopped here too, as the reset stops it on the workers: in build
    mode the builder runs only the distcc client.

    + stop_k3s: False when the caller has just stopped the k3s units"""
    loaded = _builder_settings("builder distccd guard")
    if loaded is None:
        return
    settings, status = loaded
    refusal = mounts.mount_refusal(status) if status["mount"] is None else None
    if refusal:
        # Refused here, while the deploy file loads, rather than by the mount
        # operation mid-run: then no host has changed yet.
        raise DataSafetyRefusal(f"host {host.name}: {refusal} Nothing was changed on any host.")
    if stop_k3s:
        systemd.units_stopped(name="Stop the k3s units", units=list(settings.k3s_units))
    dpkg_free(name="dpkg free to install distcc", packages=["distcc"], wait_seconds=settings.apt_lock_wait)
    apt.packages(name="Install the distcc client", packages=["distcc"], update=True, cache_time=24 * 3600)
    distcc.distccd_stopped(name="distccd stopped and disabled on the builder", disable=True)
    mounts.tmpfs_mounted(
        name="Build tree tmpfs mounted", path=settings.tmpfs_path, size=settings.tmpfs_size, mode=settings.tmpfs_mode
    )
    user = settings.build_user
    home = host.get_fact(LoginEnvironment, user=user)["home"]
    if home is None:
        raise SettingsError(
            f"host {host.name}: setting distcc_build_user = {user!r} names no user on the builder. Fix: set it "
            f"to the user who runs the kernel build, or create that user. Nothing was changed on any host."
        )
    files.directory(name="distcc state directory of the build user", path=f"{home}/.distcc", user=user, mode="755")
    files.template(
        name="distcc host list of the build user",
        src=f"{TEMPLATES}/distcc-hosts.j2",
        dest=f"{home}/.distcc/hosts",
        user=user,
        mode="644",
        hosts=host_list(settings),
    )
    files.template(
        name="Masquerade PATH and fallback policy for the build user",
        src=f"{TEMPLATES}/distcc-profile.sh.j2",
        dest=PROFILE_SCRIPT,
        mode="644",
        user="root",
        group="root",
        build_user=user,
        fallback=1 if settings.client_fallback else 0,
    )


@deploy("builder k3s mode")
def builder_k3s_mode():
    """The tmpfs unmounted when it is empty (or when discarding is asked for)."""
    loaded = _builder_settings("builder k3s mode")
    if loaded is None:
        return
    settings, _ = loaded
    mounts.tmpfs_unmounted(
        name="Build tree tmpfs unmounted when empty", path=settings.tmpfs_path, discard=settings.discard_tmpfs
    )
