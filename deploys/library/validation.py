"""Read-only validation of DISTCC BUILD MODE.

The first host whose deploy file loads surveys every connected host itself
(one survey command per host, facts/survey.py), at most --parallel at once
(where a host's gcc differs from the builder's, a second command on it and
on the builder asks dpkg which packages the two come from), then evaluates
every check against the whole cluster, prints an ASCII table and the
details, writes the JSON report, and fails the run when a check
FAILs; every other host finds the run under way and returns. No host ever
waits for another host's loader, so no --parallel value can deadlock: the
loaders sit in pyinfra's pool, the surveys in a pool of their own. No
operation is added, so validation can change nothing, with or without --dry.

Each check is one small function registered with @check: its ID, its wide
table column, what it looks at and which role it applies to live together.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from pyinfra import host, inventory
from pyinfra.api import deploy
from pyinfra.api.exceptions import PyinfraError
from pyinfra.context import ctx_state

from deploys.library.builder import (
    CCACHE_TEMPDIR,
    CCACHE_TMPFILES,
    PROFILE_SCRIPT,
    PUMP_OPTIONS,
    ccache_dir,
    login_drift,
    pump_host_entry,
)
from deploys.library.cluster import builder_host, check_inventory, first_loader, on_each, peer_name, role_of, worker_hosts
from deploys.library.settings import Settings, compiler_package, jobs_for, settings_for, tmpfs_size_for
from deploys.library.tables import narrow_table
from deploys.library.worker import builder_peer, distccd_config, override_text
from facts.compiler import INVOKED_NAMES, GccPackage, Identity
from facts.distcc import EVERY_ADDRESS, ProcessInfo, foreign_listeners, holder_text
from facts.mounts import hidden_mount_fix, mount_hidden
from facts.survey import HostSurvey, Reach, Survey
from operations.distcc import UNIT
from operations.mounts import fstab_entry, parse_size, tmpfs_bytes
from operations.systemd import dropin_path

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
HEAL = "run deploys/mode_switch.py"
DISTCC_DIR = "/usr/lib/distcc"
# Debian's ccache links every compiler name it finds here.
CCACHE_LINKS = "/usr/lib/ccache"


@dataclass(frozen=True)
class Check:
    id: str
    result: str
    detail: str


class ValidationFailed(PyinfraError):
    """At least one check FAILed; the message names each."""


# --- what the checks look at ------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One inventory host as validation sees it."""

    name: str
    peer: str
    role: str
    settings: Settings


@dataclass
class Cluster:
    """The inventory's nodes and what each answered; a survey of None means
    the host was not surveyed, `unsurveyed` says why."""

    builder: Node
    workers: list[Node]
    surveys: dict[str, Survey | None]
    unsurveyed: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_inventory(cls, inventory, surveys: dict[str, Survey | None], unsurveyed: dict[str, str] | None = None):
        builder = builder_host(inventory)
        return cls(
            builder=Node(builder.name, peer_name(builder), "builder", settings_for(builder)),
            workers=[Node(w.name, peer_name(w), "worker", settings_for(w)) for w in worker_hosts(inventory)],
            surveys=surveys,
            unsurveyed=dict(unsurveyed or {}),
        )

    @property
    def nodes(self) -> list[Node]:
        return [self.builder, *self.workers]

    @property
    def builder_survey(self) -> Survey | None:
        return self.surveys.get(self.builder.name)

    def jobs(self, worker: Node) -> int | None:
        """What the mode switch gives this worker (jobs_for, as worker_jobs
        does from the same CPUs and memory); distcc_jobs alone when the
        worker was not surveyed."""
        survey = self.surveys.get(worker.name)
        if survey and "resources" in survey:
            return jobs_for(worker.settings, survey["resources"]["cpus"], survey["resources"]["memory_bytes"])
        return worker.settings.jobs


@dataclass
class Subject:
    """One surveyed node, in its cluster: what a check function receives."""

    node: Node
    survey: Survey
    cluster: Cluster

    @property
    def settings(self) -> Settings:
        return self.node.settings

    @property
    def builder(self) -> Survey | None:
        return self.cluster.builder_survey

    @cached_property
    def main_process(self) -> ProcessInfo | None:
        """The distccd that is the unit's main process, if it runs."""
        main_pid = self.survey["unit"]["main_pid"]
        return next((p for p in self.survey["processes"]["distccd"] if main_pid and p["pid"] == main_pid), None)

    @cached_property
    def argv(self) -> list[str]:
        return self.main_process["args"].split() if self.main_process else []

    @cached_property
    def allows(self) -> list[str]:
        return [self.argv[i + 1] for i, arg in enumerate(self.argv[:-1]) if arg == "--allow"]

    @cached_property
    def config(self) -> dict | None:
        """What this package renders for this worker; None when it cannot
        (the builder does not resolve or has no route from here)."""
        route = self.survey["builder_route"]
        if not (route["address"] and route["source"]) or self.builder_name_problem():
            return None
        resources = self.survey["resources"]
        return distccd_config(self.settings, route, jobs_for(self.settings, resources["cpus"], resources["memory_bytes"]))

    @cached_property
    def reach(self) -> Reach | None:
        """The builder's TCP probe of this worker's distccd port."""
        return next((r for r in (self.builder or {}).get("reach", []) if r["peer"] == self.node.peer), None)

    def builder_route_problem(self) -> str | None:
        """Why this worker has no path to the builder, with the fix; None when it has one."""
        route = self.survey["builder_route"]
        peer = route["peer"] or self.cluster.builder.peer
        if not route["address"]:
            return (
                f"the builder's name {peer} does not resolve on this worker: add it to DNS or this worker's "
                f"/etc/hosts, or set distcc_builder_address to the builder's address"
            )
        if not route["source"]:
            return (
                f"this worker has no route to the builder {peer} ({route['address']}): add one (ip route) or fix "
                f"this worker's network configuration"
            )
        return self.builder_name_problem()

    def builder_name_problem(self) -> str | None:
        """Why the address this worker has for the builder is not the
        builder's (a stale /etc/hosts line, a wrong DNS record, a wrong
        distcc_builder_address), with the fix; None when it is one of the
        builder's own addresses, or when the builder's are not known. The
        worker's --allow is derived from it, so every job would be denied."""
        route = self.survey["builder_route"]
        theirs = ((self.builder or {}).get("resources") or {}).get("addresses") or []
        if not (route["address"] and theirs) or route["address"] in theirs:
            return None
        peer = route["peer"] or self.cluster.builder.peer
        if self.settings.builder_address:
            found = f"setting distcc_builder_address = {self.settings.builder_address!r} gives {route['address']}"
            fix = "set it to one of those"
        else:
            found = f"{self.node.peer} resolves the builder's name {peer} to {route['address']}"
            fix = f"make {peer} resolve to one of those on {self.node.peer} (its /etc/hosts or DNS)"
        return f"{found}, but the builder's addresses are {', '.join(theirs)}; {fix}, then {HEAL}"


# --- the registry --------------------------------------------------------------


@dataclass(frozen=True)
class CheckSpec:
    id: str
    column: str
    about: str
    role: str  # builder, worker, or host (every node)
    evaluate: Callable[[Subject], tuple[str, str]]


REGISTRY: list[CheckSpec] = []


def check(check_id: str, *, column: str, about: str, role: str) -> Callable:
    """Register a check: a function of a Subject giving (result, detail).
    Registration order is the wide table's column order, and the order in
    which a host's first problem is chosen."""

    def register(function: Callable[[Subject], tuple[str, str]]) -> Callable[[Subject], tuple[str, str]]:
        if any(spec.id == check_id or spec.column == column for spec in REGISTRY):
            raise ValueError(f"check {check_id} (column {column}) is registered twice")
        REGISTRY.append(CheckSpec(check_id, column, about, role, function))
        return function

    return register


def _list(items) -> str:
    return ", ".join(str(i) for i in items)


# H-REACHABLE has no function of a survey: it is what decides whether there is one.
REACHABLE = CheckSpec(
    "H-REACHABLE", "reachable", "pyinfra could connect to the host and run the survey", "host", lambda subject: (PASS, "surveyed")
)
REGISTRY.append(REACHABLE)


def _build_user_missing(s: Subject) -> str | None:
    user = s.settings.build_user
    if s.survey["login"]["exists"]:
        return None
    return (
        f"the build user {user} does not exist on the builder: create it (adduser {user}) or set "
        f"distcc_build_user to the user who runs the kernel build, then {HEAL}"
    )


@check("B-TMPFS", column="tmpfs", role="builder",
       about="builder: tmpfs at the build path, its size, mode and exec, and in fstab")
def builder_tmpfs(s: Subject) -> tuple[str, str]:
    settings = s.settings
    mount = s.survey["mount"]["mount"]
    path = settings.tmpfs_path
    if mount_hidden(s.survey["mount"]):
        return FAIL, hidden_mount_fix(s.survey["mount"], HEAL)
    if mount is None:
        return FAIL, f"nothing is mounted at {path}; {HEAL}"
    if mount["fstype"] != "tmpfs":
        return FAIL, f"{path} is {mount['fstype']}, not tmpfs; unmount it, then {HEAL}"
    problems = []
    size = tmpfs_size_for(settings, s.survey["mount"]["memory_bytes"])
    want_size = tmpfs_bytes(size, s.survey["mount"]["page_size"])
    if mount["size"] != want_size:
        problems.append(f"size {mount['size']} bytes, want {want_size} ({size})")
    if mount["noexec"]:
        problems.append("mounted noexec (kernel builds run the tools they compile)")
    if mount["mode"] != settings.tmpfs_mode:
        problems.append(f"mode {mount['mode']}, want {settings.tmpfs_mode}")
    # What the next boot mounts is judged as the mode switch writes it: a
    # line edited by hand (noexec, another size) passes today's mount but
    # not the next boot's.
    fstab, wanted = s.survey["mount"]["fstab"], fstab_entry(path, size, settings.tmpfs_mode)
    if fstab is None:
        problems.append("missing from /etc/fstab, so the next boot does not mount it")
    elif fstab != wanted:
        problems.append(
            f"its /etc/fstab line is '{' '.join(fstab)}', not '{' '.join(wanted)}', so the next boot mounts it wrong"
        )
    duplicates = s.survey["mount"]["fstab_duplicates"]
    if duplicates:
        problems.append(
            f"/etc/fstab has {1 + len(duplicates)} live lines for {path} (systemd mounts the first and refuses the "
            f"others: {'; '.join(' '.join(d) for d in duplicates)})"
        )
    if problems:
        return FAIL, "; ".join(problems) + f"; {HEAL}"
    return PASS, f"tmpfs {size} mode {mount['mode']} exec, in fstab as written"


@check("B-DISTCCD-OFF", column="distccd-off", role="builder",
       about="builder: distccd inactive, disabled, not running, not listening")
def builder_distccd_off(s: Subject) -> tuple[str, str]:
    unit, listening, running = s.survey["unit"], s.survey["listening"], s.survey["processes"]["distccd"]
    problems = []
    if unit["load"] == "loaded" and unit["active"] not in ("inactive", "failed"):
        problems.append(f"{UNIT} is {unit['active']} ({unit['sub']})")
    if unit["load"] == "loaded" and unit["enabled"]:
        problems.append(f"{UNIT} is enabled")
    if running:
        problems.append(f"distccd processes run (pids {_list(p['pid'] for p in running)})")
    if listening:
        problems.append(f"something listens on port {s.settings.port}")
    if problems:
        return FAIL, "; ".join(problems) + f"; the builder must not serve compiles: {HEAL}"
    return PASS, "no distccd: inactive, disabled, nothing listening"


@check("B-CLIENT", column="client", role="builder", about="builder: distcc client installed")
def builder_client(s: Subject) -> tuple[str, str]:
    if not s.survey["masquerade"]["distcc_installed"]:
        return FAIL, f"distcc is not installed; {HEAL}"
    login = s.survey.get("login") or {}
    log = (login.get("build_env") or {}).get("DISTCC_LOG")
    unwritable = _denied(login.get("denied") or [], "write", (log,)) if log else []
    if unwritable:
        return WARN, (
            f"distcc installed, but the build user {s.settings.build_user} cannot write its client log "
            f"{unwritable[0]}: the build report cannot count the builder's jobs; remove the file (the next "
            f"build starts it anew) or give it to {s.settings.build_user}"
        )
    return PASS, "distcc installed"


def _denied(denied: list, access: str, paths: tuple[str, ...] = (), prefix: str = "") -> list[str]:
    """The denied paths of this access (read, write, search), among paths or
    under prefix, each named with its owner and mode."""
    return [
        f"{d['path']} (owner {d['owner']}, mode {d['mode']})" for d in denied
        if d["access"] == access and (d["path"] in paths or (prefix and d["path"].startswith(prefix)))
    ]


@check("B-HOSTS", column="host-list", role="builder",
       about="builder: distcc --show-hosts lists exactly the inventory's workers")
def builder_host_list(s: Subject) -> tuple[str, str]:
    missing_user = _build_user_missing(s)
    if missing_user:
        return FAIL, missing_user
    login, user = s.survey["login"], s.settings.build_user
    shown = login["distcc_hosts"]
    if shown is None:
        return FAIL, f"distcc --show-hosts cannot run for {user} (distcc is not installed or not on {user}'s PATH); {HEAL}"
    expected, unknown = [], []
    for worker in s.cluster.workers:
        jobs = s.cluster.jobs(worker)
        if jobs is None:
            unknown.append(worker.name)
        else:
            expected.append(f"{worker.peer}:{worker.settings.port}/{jobs}")
    if unknown:
        return WARN, f"cannot compare: no survey from {_list(unknown)}"
    # What distcc needs under its directory, tried as the build user: a host
    # list it cannot read is skipped in silence (distcc then uses
    # /etc/distcc/hosts, or localhost), and without its lock and state
    # directories it cannot keep its slots and backoff.
    state = login["build_env"].get("DISTCC_DIR") or f"{login['home']}/.distcc"
    unreadable = _denied(login["denied"], "read", (f"{state}/hosts",))
    unwritable = _denied(login["denied"], "write", (state, f"{state}/lock", f"{state}/state"))
    if unreadable:
        return FAIL, (
            f"the build user {user} cannot read {unreadable[0]}, so distcc skips it and uses its default host "
            f"list ({' '.join(shown) or 'none'}); the mode switch writes it owned by {user}, mode 644: {HEAL}"
        )
    if unwritable:
        return FAIL, (
            f"the build user {user} cannot write {_list(unwritable)}, where distcc keeps its locks and backoff "
            f"state, so its jobs do not go to the workers as set; give {user} the directory back (chown -R "
            f"{user} {state}), then {HEAL}"
        )
    if sorted(shown) == sorted(expected):
        return PASS, f"{len(shown)} workers: {' '.join(shown)}"
    found = f"host list is {' '.join(shown) or 'empty'}, want {' '.join(expected)}"
    if "DISTCC_HOSTS" in login["build_env"]:
        return FAIL, (
            f"{found}: DISTCC_HOSTS is set in {user}'s login environment and overrides ~/.distcc/hosts; "
            f"remove it from {user}'s shell files"
        )
    return FAIL, f"{found}; {HEAL}"


def _cross_problems(s: Subject, wrong: dict[str, str | None]) -> dict[str, str]:
    """Why a cross compiler named in distcc_cross_compilers does not run the
    masquerade: not installed on the builder, or no link for it in the
    builder's /usr/lib/distcc (the build then runs the compiler itself and
    every file compiles on the builder). A link that exists but is shadowed
    on PATH is left to the PATH diagnosis that covers every name."""
    user, links = s.settings.build_user, s.survey["masquerade"]["links"]
    problems = {}
    for name in s.settings.cross_compilers:
        if name not in wrong:
            continue
        if wrong[name] is None:
            problems[name] = (
                f"the cross compiler {name} (distcc_cross_compilers) is not installed on the builder, so "
                f"{user}'s build fails on every file it compiles with it; {HEAL} (it installs Debian's {compiler_package(name)})"
            )
        elif name not in links:
            problems[name] = (
                f"{DISTCC_DIR}/{name} is missing on the builder, so {user}'s login shell runs {wrong[name]} "
                f"directly and every {name} job compiles on the builder, never on a worker; run "
                f"update-distcc-symlinks as root on the builder (Debian's distcc links every installed gcc there)"
            )
    return problems


@check("B-PATH", column="masquerade", role="builder",
       about="builder: cc, c++, gcc, g++ and the cross compilers run the masquerade in the build user's login shell, "
       "nothing overrides the farm")
def builder_path(s: Subject) -> tuple[str, str]:
    missing_user = _build_user_missing(s)
    if missing_user:
        return FAIL, missing_user
    login, user = s.survey["login"], s.settings.build_user
    drift = login_drift(login, s.settings.ccache)
    if drift:
        return FAIL, drift
    # A login shell skips a profile script it cannot read, and a PATH
    # lookup a directory it cannot search, in silence: named first.
    unreadable = _denied(login["denied"], "read", prefix="/etc/profile.d/")
    unsearchable = _denied(login["denied"], "search", (DISTCC_DIR,))
    if unreadable or unsearchable:
        found = [f"cannot read {_list(unreadable)}, which the login shell then skips"] if unreadable else []
        found += [f"cannot search {_list(unsearchable)}, so no compiler name finds the masquerade"] if unsearchable else []
        return FAIL, (
            f"the build user {user} {'; and '.join(found)}; make them readable for everyone (chmod 644 for a "
            f"profile script, 755 for {DISTCC_DIR}), then {HEAL}"
        )
    path = login["path"]
    # With distcc_ccache the names run ccache, whose CCACHE_PREFIX=distcc
    # sends every miss through the farm (B-CCACHE judges its settings).
    front = CCACHE_LINKS if s.settings.ccache else DISTCC_DIR
    wrong = {name: found for name, found in login["compilers"].items() if found != f"{front}/{name}"}
    if not wrong and login["compilers"]:
        # Debian's ~/.profile puts ~/bin and ~/.local/bin first when they
        # exist: harmless while no compiler lives there.
        where = "first" if path[:1] == [front] else f"after {':'.join(path[:path.index(front)])}"
        through = " (ccache, then distcc)" if s.settings.ccache else ""
        return PASS, f"{_list(sorted(login['compilers']))} run {front}{through} ({where} on {user}'s login PATH)"
    cross = _cross_problems(s, wrong)
    rest = {name: found for name, found in wrong.items() if name not in cross}
    return FAIL, "; ".join([*cross.values(), *([_path_problem(s, rest)] if rest or not cross else [])])


def _path_problem(s: Subject, wrong: dict[str, str | None]) -> str:
    """Why these compiler names do not run the masquerade on the build user's
    login PATH, with the fix."""
    login, user = s.survey["login"], s.settings.build_user
    path = login["path"]
    shown = ":".join(path[:4]) or "empty"
    resolved = _list(f"{name} -> {found or 'nothing'}" for name, found in sorted(wrong.items()))
    profile = s.survey.get("profile")
    if profile is not None and not (profile["present"] and profile["sets_path"]):
        return f"{user}'s login shell runs {resolved}: {PROFILE_SCRIPT} is missing or does not set PATH; {HEAL}"
    ccached = sorted(name for name, found in wrong.items() if (found or "").startswith(f"{CCACHE_LINKS}/"))
    if ccached and not s.settings.ccache:
        return (
            f"{user}'s login shell runs {_list(ccached)} through ccache ({CCACHE_LINKS} comes before {DISTCC_DIR} on "
            f"its PATH, set in {user}'s own shell files): ccache then takes distcc's masquerade for the compiler and "
            f"caches by distcc's binary, not gcc's. Fix: set distcc_ccache = True to have the mode switch put ccache "
            f"in front of distcc (CCACHE_PREFIX=distcc), or take {CCACHE_LINKS} off that PATH"
        )
    if s.settings.ccache and not ccached and any((f or "").startswith(f"{DISTCC_DIR}/") for f in wrong.values()):
        return (
            f"{user}'s login shell runs {resolved}, the masquerade, not ccache ({CCACHE_LINKS}), though "
            f"distcc_ccache is set: {PROFILE_SCRIPT} is not the one the mode switch writes for it; {HEAL}"
        )
    if DISTCC_DIR in path:
        return (
            f"{user}'s login shell runs {resolved} (PATH starts {shown}): a file read after {PROFILE_SCRIPT} "
            f"(~/.profile, ~/.bash_profile, ~/.bashrc) puts {path[0]} first with those compilers in it; remove "
            f"them from there or make that file append to PATH (the mode switch does not edit {user}'s own files)"
        )
    if profile is not None:
        return (
            f"{user}'s login PATH is {shown}, without {DISTCC_DIR}: {PROFILE_SCRIPT} sets it, but a file read after "
            f"it (~/.profile, ~/.bash_profile, ~/.bashrc) replaces PATH; make that file extend PATH instead "
            f"(the mode switch does not edit {user}'s own files)"
        )
    return f"{user}'s login shell runs {resolved}, not {DISTCC_DIR}; {HEAL}"


# kbuild's ARCH for a Debian architecture (what the node's gcc builds for)
# and for a kernel machine (what `uname -m` says: kbuild's SUBARCH).
KBUILD_ARCH_OF_DPKG = {"amd64": "x86", "i386": "x86", "arm64": "arm64", "armhf": "arm", "armel": "arm"}
KBUILD_ARCH_OF_MACHINE = {"x86_64": "x86", "i686": "x86", "aarch64": "arm64", "armv8l": "arm", "armv7l": "arm",
                          "armv6l": "arm"}


@check("B-KERNEL-ARCH", column="kernel-arch", role="builder",
       about="builder: kbuild's ARCH from the running kernel matches the userland's gcc")
def builder_kernel_arch(s: Subject) -> tuple[str, str]:
    identity = s.survey["identity"]
    userland, machine = identity["dpkg_architecture"], identity.get("kernel_machine")
    theirs, ours = KBUILD_ARCH_OF_MACHINE.get(machine or ""), KBUILD_ARCH_OF_DPKG.get(userland or "")
    if not (theirs and ours):
        return PASS, f"kernel {machine or 'unknown'}, userland {userland or 'unknown'}: nothing to compare"
    if theirs == ours:
        return PASS, f"make without ARCH= builds for {ours}: kernel {machine}, userland {userland}"
    # 32-bit Raspberry Pi OS on a Pi 4, CM4 or Pi 5 boots a 64-bit kernel
    # (arm_64bit=1 is the firmware's default there): kbuild then picks
    # ARCH=arm64 from uname and fails with the armhf gcc (raspberrypi/linux#3487).
    cross = (
        "ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- for a 64-bit one, with an aarch64 cross gcc (Debian builds "
        "none for armhf: build that kernel on a 64-bit Raspberry Pi OS builder instead)"
        if ours == "arm" and theirs == "arm64" else f"ARCH={theirs} with a cross compiler for it"
    )
    return WARN, (
        f"the running kernel is {machine} but the userland and its gcc are {userland}: make without ARCH= would "
        f"build for ARCH={theirs} and fail with this gcc. Pass ARCH={ours} for a kernel this gcc builds"
        f"{' (a 32-bit kernel: kernel7l.img, booted with arm_64bit=0 in config.txt)' if ours == 'arm' else ''}, or "
        f"{cross}; see docs/kernel-build.md"
    )


@check("B-CCACHE", column="ccache", role="builder",
       about="builder: with distcc_ccache, ccache set as deployed (distcc behind it, depend mode, no compression, "
             "its directory and size cap, its temporary directory on /run) and room for the cache")
def builder_ccache(s: Subject) -> tuple[str, str]:
    if not s.settings.ccache:
        return PASS, "not asked for (distcc_ccache)"
    setup = s.survey.get("ccache")
    if setup is None or not setup["installed"]:
        return FAIL, f"distcc_ccache is set but ccache is not installed on the builder; {HEAL}"
    login = s.survey.get("login") or {}
    home = login.get("home") or f"/home/{s.settings.build_user}"
    wanted = {
        "prefix_command": "distcc", "depend_mode": "true", "compression": "false",
        "cache_dir": ccache_dir(s.settings, home), "temporary_dir": CCACHE_TEMPDIR,
    }
    unset = {"value": "", "origin": "default"}
    found = {key: setup["config"].get(key, unset) for key in (*wanted, "max_size")}
    wrong = [
        f"{key} = {found[key]['value'] or '(empty)'} ({found[key]['origin']}), want {value}"
        for key, value in wanted.items() if found[key]["value"] != value
    ]
    want_bytes = parse_size(s.settings.ccache_size)
    if _ccache_bytes(found["max_size"]["value"]) != want_bytes:
        wrong.append(
            f"max_size = {found['max_size']['value'] or '(empty)'} ({found['max_size']['origin']}), "
            f"want {s.settings.ccache_size}"
        )
    if wrong:
        # The profile script exports every one of them, and the environment
        # beats ccache.conf.
        return FAIL, _not_as_deployed(
            f"ccache in {s.settings.build_user}'s login shell is not as the mode switch sets it: {'; '.join(wrong)}",
            login, "CCACHE_",
        )
    if not setup["tempdir_writable"]:
        return FAIL, (
            f"{s.settings.build_user} cannot write ccache's temporary directory {CCACHE_TEMPDIR} (missing, or not "
            f"theirs): every compile ccache has not cached fails with 'ccache: error: Permission denied'. It is made "
            f"at boot from {CCACHE_TMPFILES}; {HEAL}, which writes that file and makes the directory"
        )
    directory = wanted["cache_dir"]
    if not setup["writable"]:
        return FAIL, (
            f"{s.settings.build_user} cannot write the cache {directory}: every compile misses it and nothing is "
            f"cached; chown -R {s.settings.build_user} {directory}, then {HEAL}"
        )
    used, free = setup["cache_size_bytes"] or 0, setup["free_bytes"]
    if free is not None and free < want_bytes - used:
        return WARN, (
            f"the cache {directory} holds {_mib(used)} of its {s.settings.ccache_size} cap, but its filesystem has "
            f"only {_mib(free)} free: it cannot grow to the cap; free space there or lower distcc_ccache_size"
        )
    return PASS, f"{directory}: {_mib(used)} of {s.settings.ccache_size}, distcc behind it, depend mode, no compression"


def _not_as_deployed(found_wrong: str, login: dict, prefix: str) -> str:
    """The cause of a setting of the profile script found otherwise in the
    build user's login shell: the user's own shell lines that set a variable
    named with this prefix (file and line named), else a missing or old
    profile script, which the mode switch rewrites."""
    theirs = "; ".join(
        f"{o['file']} line {o['line']} ({o['text']})" for o in login.get("overrides") or []
        if o["file"] != PROFILE_SCRIPT and o["text"].removeprefix("export").strip().startswith(prefix)
    )
    if theirs:
        return f"{found_wrong}. Set by the user's own shell files over {PROFILE_SCRIPT}: {theirs}; remove that"
    return f"{found_wrong}; {HEAL}"


def _ccache_bytes(text: str) -> int | None:
    """ccache -p's max_size ("5.0 GiB", "2.0 GB", "500 MiB") in bytes."""
    number, _, unit = text.partition(" ")
    factors = {"": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4,
               "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4}
    try:
        return round(float(number) * factors[unit.strip()])
    except (KeyError, ValueError):
        return None


@check("B-PUMP", column="pump", role="builder",
       about="builder: with distcc_pump, a compile under distcc-pump reaches each worker and is preprocessed there")
def builder_pump(s: Subject) -> tuple[str, str]:
    if not s.settings.pump:
        return PASS, "not asked for (distcc_pump)"
    probe = s.survey.get("pump")
    if probe is None or not probe["installed"]:
        return FAIL, f"distcc_pump is set but distcc-pump is not installed on the builder; {HEAL}"
    login = s.survey.get("login") or {}
    wanted = " ".join(pump_host_entry(h) for h in login.get("distcc_hosts") or [])
    found = (login.get("build_env") or {}).get("DISTCC_PUMP_HOSTS", "").strip()
    if found != wanted:
        return FAIL, _not_as_deployed(
            f"DISTCC_PUMP_HOSTS in {s.settings.build_user}'s login shell is '{found}', not the host list with "
            f"{PUMP_OPTIONS} and twice the slots, '{wanted}': `DISTCC_HOSTS=$DISTCC_PUMP_HOSTS distcc-pump make` would not reach the "
            f"workers in pump mode",
            login, "DISTCC_PUMP_HOSTS",
        )
    problems, fine = [], []
    for worker in s.cluster.workers:
        entry = probe["workers"].get(f"{worker.peer}:{worker.settings.port}")
        if entry is None:
            problems.append(f"{worker.peer}: no pump compile was tried (distcc-pump did not start)")
        elif entry["rc"] != 0:
            problems.append(f"{worker.peer}: the pump compile failed (exit {entry['rc']}; see W-REACH and W-DISTCCD)")
        elif not entry["pumped"]:
            why = entry["reason"] or "no reason logged"
            problems.append(f"{worker.peer}: preprocessed here, not on the worker (include server: {why})")
        else:
            fine.append(worker.peer)
    if problems and not fine and s.settings.ccache and not (s.survey.get("ccache") or {}).get("writable", True):
        # distcc-pump asks `gcc -v`, which PATH makes ccache's, for the system
        # include directories: an unwritable cache fails it, and every job.
        return FAIL, (
            f"{'; '.join(problems)}. The include server runs gcc, ccache's on this PATH, to find the system "
            f"include directories, and ccache cannot write its cache: fix B-CCACHE first"
        )
    if problems:
        return FAIL, (
            f"{'; '.join(problems)}. Pump jobs that fall back are preprocessed on the builder as in plain mode; "
            f"a release whose include server fails (bookworm) cannot have distcc_pump"
        )
    return PASS, f"a pump compile reached {len(fine)} workers and was preprocessed there"


@check("B-DRYRUN", column="slots", role="builder",
       about="builder: distcc -j (parses the host list, contacts nobody) gives the workers' slots")
def builder_slots(s: Subject) -> tuple[str, str]:
    missing_user = _build_user_missing(s)
    if missing_user:
        return FAIL, missing_user
    slots = s.survey.get("slots")
    if slots is None:
        return FAIL, (
            f"distcc -j gave no slot count for {s.settings.build_user} (distcc missing, or no host list); {HEAL}"
        )
    jobs = [s.cluster.jobs(w) for w in s.cluster.workers]
    want = sum(j for j in jobs if j is not None)
    if slots != want and None not in jobs:
        found = f"distcc -j says {slots} slots, the workers offer {want}"
        if "DISTCC_HOSTS" in s.survey["login"]["build_env"]:
            user = s.settings.build_user
            return FAIL, f"{found}: DISTCC_HOSTS in {user}'s login environment overrides ~/.distcc/hosts; remove it"
        return FAIL, f"{found}; {HEAL}"
    return PASS, f"distcc -j: {slots} slots"


@check("W-DISTCCD", column="distccd", role="worker",
       about="worker: distccd active, running, and listening on its address:port")
def worker_distccd(s: Subject) -> tuple[str, str]:
    unit, listening, port = s.survey["unit"], s.survey["listening"], s.settings.port
    address = s.config["listen"] if s.config else None
    if unit["load"] != "loaded" or not s.survey["masquerade"]["distcc_installed"]:
        return FAIL, f"distcc is not installed; {HEAL}"
    held = foreign_listeners(listening, address)
    if held:
        # Never called distccd, and no mode switch heals it: it refuses.
        return FAIL, (
            f"port {port} is held by {'; '.join(map(holder_text, held))}, so distccd cannot listen on "
            f"{address or 'its address'}:{port}: stop that program (kill {' '.join(str(h['pid']) for h in held)}, "
            f"or stop its service) or set distcc_port to a free port, then {HEAL}"
        )
    if unit["active"] != "active" or unit["sub"] != "running" or not unit["main_pid"]:
        return FAIL, f"{UNIT} is {unit['active']} ({unit['sub']}) with no daemon; {HEAL}"
    if address is None:
        return FAIL, f"distccd runs, but its listen address cannot be worked out: {s.builder_route_problem()}"
    if not any(sock["address"] == address and sock["port"] == port for sock in listening):
        found = _list(f"{sock['address']}:{sock['port']}" for sock in listening) or "nothing"
        return FAIL, f"active but not listening on {address}:{port} (found {found}); {HEAL}"
    unwritable = _denied(s.survey.get("distccd_access", []), "write", prefix=s.settings.log_dir)
    if unwritable:
        # distccd then logs to stderr (the journal) and serves on: its job
        # lines are not where the smoke test and the build report read them.
        return FAIL, (
            f"pid {unit['main_pid']} listening on {address}:{port}, but user distccd cannot write "
            f"{_list(unwritable)}: distccd logs to the journal instead, where the smoke test and the build report "
            f"cannot count its jobs; give them to distccd (chown distccd:adm), then {HEAL}"
        )
    return PASS, f"pid {unit['main_pid']} listening on {address}:{port}"


@check("W-OVERRIDE", column="override", role="worker",
       about="worker: override present and equal to what this package renders")
def worker_override(s: Subject) -> tuple[str, str]:
    dest = dropin_path(UNIT, "override.conf")
    current = s.survey["unit"]["dropins"].get(dest)
    if s.config is None:
        return FAIL, f"cannot render the override: {s.builder_route_problem()}"
    if current is None:
        return FAIL, f"{dest} is missing; {HEAL}"
    if current != hashlib.sha256(override_text(s.config).encode()).hexdigest():
        return FAIL, f"{dest} differs from what this package renders; {HEAL}"
    return PASS, f"{dest} as rendered"


def _sent(builder: Survey | None) -> dict[str, list[str]]:
    """Each name the builder's client sends, with the names a build invokes
    that become it (distcc 3.4 rewrites cc and gcc to x86_64-linux-gnu-gcc on
    amd64, and nothing on ARM)."""
    sent: dict[str, list[str]] = {}
    for invoked, name in ((builder or {}).get("sent") or {"sent": {}})["sent"].items():
        if name:
            sent.setdefault(name, []).append(invoked)
    return sent


def _sent_by(name: str, invoked: list[str]) -> str:
    others = [n for n in invoked if n != name]
    return f"`{name}`" + (f" (what the builder sends for {_list(others)})" if others else "")


@check("W-WHITELIST", column="whitelist", role="worker",
       about="worker: /usr/lib/distcc links every compiler name the builder's client sends")
def worker_whitelist(s: Subject) -> tuple[str, str]:
    links = s.survey["masquerade"]["links"]
    sent = _sent(s.builder)
    wanted = set(sent)
    if not wanted:
        # No client on the builder yet to ask: the names it has installed.
        builder = s.builder
        wanted = set(builder["masquerade"]["compilers"]) if builder and "masquerade" in builder else set()
        if s.settings.compilers:
            wanted &= set(s.settings.compilers)
    unreadable = _denied(s.survey.get("distccd_access", []), "read", (DISTCC_DIR,))
    if unreadable:
        return FAIL, (
            f"user distccd cannot read {unreadable[0]}, so distccd finds no compiler it may run and refuses every "
            f"job; make it readable (chmod 755 {DISTCC_DIR}), then {HEAL}"
        )
    missing = sorted(n for n in wanted if n not in links)
    others = s.survey["masquerade"]["other_entries"]
    if missing:
        named = _list(_sent_by(n, sent.get(n, [])) for n in missing)
        return FAIL, f"{DISTCC_DIR} lacks {named}, so every job the builder sends with it is refused; {HEAL}"
    if others:
        return WARN, f"{DISTCC_DIR} also holds non-links {_list(others)}; remove them"
    return PASS, f"the {len(wanted)} compiler names the builder sends are linked: {_list(sorted(wanted))}"


def _target_fix(builder_arch: str | None, builder_machine: str | None, arch: str | None) -> str:
    cross = (
        f"; or build with CROSS_COMPILE={builder_machine}- (setting distcc_cross_compilers = "
        f"['{builder_machine}-gcc']) so the builder sends {builder_machine}-gcc, which the mode switch then "
        f"installs here from Debian's gcc-{builder_machine}"
        if arch != "armhf" else ""
    )
    return (
        f"run the builder's architecture ({builder_arch or 'the same Raspberry Pi OS'}) on this worker, or remove "
        f"it from the workers group{cross}"
    )


@check("W-COMPILERS", column="compilers", role="worker",
       about="worker: each compiler name the builder sends runs here the builder's compiler (same version and target)")
def worker_compilers(s: Subject) -> tuple[str, str]:
    builder = s.builder or {}
    sent = _sent(builder)
    if not sent:
        return WARN, "no compiler names from the builder to compare (its distcc client is missing or did not answer)"
    theirs = builder["sent"]["identities"]
    mine = s.survey["compilers"]
    arch, builder_arch = s.survey["identity"]["dpkg_architecture"], builder["identity"]["dpkg_architecture"]
    problems: list[str] = []
    fixes: list[str] = []
    uncompared: list[str] = []

    def found(problem: str, fix: str) -> None:
        problems.append(problem)
        if fix not in fixes:
            fixes.append(fix)

    for name, invoked in sorted(sent.items()):
        their = theirs.get(name) or {"version": None, "machine": None}
        their_version, their_machine = their["version"], their["machine"]
        if their_machine is None:
            uncompared.append(name)
            continue
        binary = mine["resolves"].get(name)
        if binary is None:
            found(
                f"{_sent_by(name, invoked)} is not installed here, so its jobs fail",
                f"install Debian's {compiler_package(name, s.survey['identity']['gcc_machine'])} here (for a cross "
                f"compiler, listing it in distcc_cross_compilers makes the mode switch do it)",
            )
            continue
        compiler = mine["identities"].get(binary) or {"version": None, "machine": None}
        version, machine = compiler["version"], compiler["machine"]
        if machine != their_machine:
            found(
                f"{_sent_by(name, invoked)} is {binary}, gcc {version} for {machine} (dpkg {arch}), but the "
                f"builder's is for {their_machine} (dpkg {builder_arch}): its objects would be for the wrong CPU",
                _target_fix(builder_arch, their_machine, arch),
            )
        elif version != their_version:
            releases = release_mismatch(s.survey.get("gcc_package"), builder.get("gcc_package"))
            found(
                f"{_sent_by(name, invoked)} is gcc {version} here but {their_version} on the builder: objects "
                f"would be silently different",
                f"this worker runs {releases[0]}, the builder {releases[1]}: {SAME_RELEASE_FIX}" if releases
                else "install the builder's gcc version here (the same OS release and upgrades)",
            )
    if problems:
        return FAIL, f"{'; '.join(problems)}. Fix: {'; '.join(fixes)}"
    if uncompared:
        return WARN, (
            f"cannot compare {_list(f'`{n}`' for n in uncompared)}: the builder cannot run it (not installed there; "
            f"see B-PATH on the builder)"
        )
    shown = _list(
        f"{name} {theirs[name]['version']} {theirs[name]['machine']}" if name in theirs else name for name in sorted(sent)
    )
    return PASS, f"same as the builder: {shown}"


@check("W-ALLOW", column="allow", role="worker",
       about="worker: an explicit --allow that does not cover every address")
def worker_allow(s: Subject) -> tuple[str, str]:
    if not s.argv:
        return WARN, "distccd is not running; its --allow cannot be read"
    if not s.allows:
        return FAIL, f"no --allow: distccd 3.4 then accepts every address; {HEAL}"
    if any(IPv4Network(a, strict=False).prefixlen == 0 for a in s.allows):
        result = WARN if s.settings.allow_open_ok else FAIL
        return result, f"--allow {' '.join(s.allows)} covers every address; list only the builder"
    return PASS, f"--allow {' '.join(s.allows)}"


@check("W-INSECURE", column="no-insecure", role="worker", about="worker: no --enable-tcp-insecure")
def worker_no_insecure(s: Subject) -> tuple[str, str]:
    insecure = [a for a in s.argv if a in ("--enable-tcp-insecure", "--make-me-a-botnet")]
    if insecure:
        return FAIL, f"distccd runs with {insecure[0]} (no compiler whitelist); {HEAL}"
    return PASS, "compiler whitelist enforced"


@check("W-LISTEN", column="listen", role="worker", about="worker: not listening on all addresses")
def worker_listen(s: Subject) -> tuple[str, str]:
    # Only distccd's own sockets: another program on the port is W-DISTCCD's.
    listening = [sock for sock in s.survey["listening"] if sock not in foreign_listeners(s.survey["listening"])]
    wildcard = [sock for sock in listening if sock["address"] in EVERY_ADDRESS]
    if wildcard:
        return FAIL, f"listening on all addresses ({wildcard[0]['address']}); {HEAL}"
    return PASS, "listens on one address only" if listening else "not listening"


@check("W-USER", column="user", role="worker", about="worker: distccd runs as user distccd")
def worker_user(s: Subject) -> tuple[str, str]:
    main = s.main_process
    if main is None:
        return WARN, "distccd is not running"
    if main["user"] != "distccd":
        return FAIL, (
            f"distccd (pid {main['pid']}) runs as {main['user']}, not distccd; the mode switch leaves a running, "
            f"listening distccd alone, so {HEAL}, then restart distccd: "
            f"pyinfra INVENTORY deploys/worker_distccd_reset.py --data distcc_force_restart=True"
        )
    return PASS, "runs as distccd"


@check("W-REACH", column="reach", role="worker",
       about="cluster: the builder opens TCP to the worker's distccd port")
def worker_reach(s: Subject) -> tuple[str, str]:
    port, reach = s.settings.port, s.reach
    if s.builder is None:
        return FAIL, "the builder was not surveyed, so it could not probe this worker (see its H-REACHABLE)"
    if reach is None:
        return FAIL, f"the builder's survey has no probe of {s.node.peer}; run validation again"
    status = reach.get("status", "open" if reach["open"] else "closed")
    target = f"{reach['address']}:{port}"
    # The builder's name for this worker resolving to another host: the
    # probe (and every job) went there, whatever answered.
    own = (s.survey.get("resources") or {}).get("addresses") or []
    if reach["address"] and own and reach["address"] not in own:
        return FAIL, (
            f"the builder resolves {s.node.peer} to {reach['address']}, but this worker's addresses are "
            f"{', '.join(own)}: its probe, and every job, goes to another host ({status}); fix the builder's "
            f"/etc/hosts or the DNS record so {s.node.peer} resolves to this worker, then {HEAL}"
        )
    if status == "open":
        return PASS, f"builder {reach['source']} -> {target} open"
    if status == "unresolved":
        return FAIL, f"the builder cannot resolve {s.node.peer}: add it to DNS or the builder's /etc/hosts"
    if status == "noroute":
        return FAIL, (
            f"the builder has no route to {s.node.peer} ({reach['address']}): add one on the builder (ip route) "
            f"or fix the builder's network configuration"
        )
    route_problem = s.builder_route_problem()
    if status in ("timeout", "unreachable", "closed") and route_problem:
        return FAIL, f"the builder's TCP to {target} got no answer ({status}), and {route_problem}"
    if status == "timeout":
        return FAIL, (
            f"TCP from the builder to {target} timed out: a firewall drops it (port filtered); allow TCP port "
            f"{port} from {reach['source']} on this worker's firewall (iptables/nftables) and any firewall between"
        )
    listening_there = any(
        sock["address"] in (reach["address"], "0.0.0.0", "*", "::") and sock["port"] == port
        for sock in s.survey["listening"]
    )
    if status == "refused" and not listening_there:
        return FAIL, f"the builder's TCP to {target} was refused: nothing listens there (distccd down); {HEAL}"
    if status == "refused":
        return FAIL, (
            f"the builder's TCP to {target} was refused although distccd listens there: a firewall rule rejects "
            f"it; allow TCP port {port} from {reach['source']} on this worker's firewall"
        )
    if status == "unreachable":
        return FAIL, (
            f"the builder gets host unreachable for {target}: the worker is down, or a firewall rejects with "
            f"ICMP; check the worker's network and allow TCP port {port} from {reach['source']}"
        )
    return FAIL, f"the builder could not open {target}; check the network between the builder and this worker"


@check("W-ALLOW-BUILDER", column="allows-builder", role="worker",
       about="cluster: the worker's --allow covers the builder's source address")
def worker_allows_builder(s: Subject) -> tuple[str, str]:
    reach = s.reach
    if reach is None or reach["source"] is None or not s.allows:
        return WARN, "cannot tell: no builder source address or no --allow"
    source = IPv4Address(reach["source"])
    if any(source in IPv4Network(a, strict=False) for a in s.allows):
        return PASS, f"builder {reach['source']} is allowed"
    denied = f"builder's address {reach['source']} is not in --allow {' '.join(s.allows)} (its jobs are denied)"
    configured = s.config["allow"] if s.config else ()
    if any(source in IPv4Network(a, strict=False) for a in configured):
        return FAIL, f"{denied}: the running distccd's --allow is not the configured {' '.join(configured)}; {HEAL}"
    name_problem = s.builder_name_problem()
    if name_problem:
        return FAIL, f"{denied}: {name_problem}"
    return FAIL, f"{denied}; set distcc_allow or distcc_builder_address, then {HEAL}"


def _gcc(identity: dict, package: dict | None) -> str:
    text = f"gcc {identity['gcc_version']} {identity['gcc_machine']}"
    if package and package.get("package"):
        text += f" (package {package['package']} {package.get('version') or 'of unknown version'}"
        if package.get("path") and package["path"] != "/usr/bin/gcc":
            text += f", run as {package['path']}"
        text += ")"
    return text


# Raspberry Pi advises a fresh image of the new release over an in-place
# upgrade; either way the compilers agree only once every node is on it.
SAME_RELEASE_FIX = (
    "run one release on every Pi: upgrade (or reflash) the nodes together, then run deploys/mode_switch.py"
)


def release_mismatch(mine: dict | None, theirs: dict | None) -> tuple[str, str] | None:
    """(this host's release, the builder's) from GccPackage's reads, when
    both are known and differ; None otherwise."""
    if not (mine and theirs and mine.get("release") and theirs.get("release")):
        return None
    if mine["release"] == theirs["release"]:
        return None
    return (mine.get("release_name") or mine["release"], theirs.get("release_name") or theirs["release"])


def gcc_differs(mine: Identity, theirs: Identity | None) -> bool:
    """Whether H-GCC FAILs on a host: it has no gcc, or one whose version or
    target is not the builder's (theirs: None when the builder was not
    surveyed)."""
    if not mine["gcc_version"]:
        return True
    return theirs is not None and (mine["gcc_version"], mine["gcc_machine"]) != (theirs["gcc_version"], theirs["gcc_machine"])


def gcc_package_reads(surveys: dict[str, Survey | None], builder_name: str) -> list[str]:
    """The hosts whose GccPackage H-GCC's FAILs name: each host whose gcc
    differs from the builder's (when it has one), and the builder, whose
    package is the fix. Empty when every gcc agrees, the usual case."""
    builder = surveys.get(builder_name)
    theirs = builder.get("identity") if builder else None
    differing = [n for n, survey in surveys.items() if survey and "identity" in survey and gcc_differs(survey["identity"], theirs)]
    reads = [n for n in differing if surveys[n]["identity"]["gcc_version"]]  # type: ignore[index]
    if differing and theirs and theirs["gcc_version"] and builder_name not in reads:
        reads.append(builder_name)
    return reads


@check("H-GCC", column="gcc", role="host", about="gcc version and target equal the builder's")
def host_gcc(s: Subject) -> tuple[str, str]:
    # gcc_package is there only where gcc_package_reads asked for it.
    mine, theirs = s.survey["identity"], (s.builder or {}).get("identity")
    my_package, their_package = s.survey.get("gcc_package"), (s.builder or {}).get("gcc_package")
    install = "install the builder's gcc"
    if their_package and their_package.get("package"):
        install = f"install {their_package['package']} version {their_package['version'] or 'as on the builder'}"
    if not mine["gcc_version"]:
        return FAIL, f"gcc is not installed (not on PATH); {install} here"
    if theirs is None:
        return WARN, "no builder survey to compare with"
    if mine["gcc_machine"] != theirs["gcc_machine"]:
        return FAIL, (
            f"{_gcc(mine, my_package)} (dpkg {mine['dpkg_architecture']}) but the builder has {_gcc(theirs, their_package)} "
            f"(dpkg {theirs['dpkg_architecture']}): objects would be for the wrong CPU; "
            f"{_target_fix(theirs['dpkg_architecture'], theirs['gcc_machine'], mine['dpkg_architecture'])}"
        )
    if (mine["gcc_version"], mine["gcc_machine"]) != (theirs["gcc_version"], theirs["gcc_machine"]):
        releases = release_mismatch(my_package, their_package)
        if releases:
            return FAIL, (
                f"{_gcc(mine, my_package)} on {releases[0]} but the builder has {_gcc(theirs, their_package)} on "
                f"{releases[1]}: each release has its own gcc, so objects would be silently wrong; "
                f"{SAME_RELEASE_FIX}"
            )
        return FAIL, (
            f"{_gcc(mine, my_package)} but the builder has {_gcc(theirs, their_package)}: objects would be silently "
            f"wrong; {install} here and make it the gcc on PATH"
        )
    return PASS, f"gcc {mine['gcc_version']} {mine['gcc_machine']} ({mine['dpkg_architecture']})"


@check("H-MTU", column="mtu", role="host", about="MTU toward the builder equals the builder's and the configured one")
def host_mtu(s: Subject) -> tuple[str, str]:
    configured = s.settings.mtu
    if s.node.role == "builder":
        probes = s.survey.get("reach", [])
        unresolved = [r["peer"] for r in probes if not r["address"]]
        unrouted = [r["peer"] for r in probes if r["address"] and not r["mtu"]]
        mtus = {r["mtu"] for r in probes if r["mtu"]}
        if unresolved:
            return FAIL, f"the builder cannot resolve {_list(unresolved)}: add them to DNS or the builder's /etc/hosts"
        if unrouted:
            return FAIL, f"the builder has no route to {_list(unrouted)}: add one (ip route) or fix its network"
        if len(mtus) > 1:
            by_peer = _list(f"{r['peer']} {r['mtu']}" for r in probes)
            return FAIL, f"the routes to the workers have different MTUs ({by_peer}); set every interface's MTU to {configured}"
        if not mtus:
            return FAIL, "no worker to measure the MTU toward"
        mtu, builder_mtu = mtus.pop(), None
    else:
        problem = s.builder_route_problem()
        if problem:
            return FAIL, problem
        mtu = s.survey["builder_route"]["mtu"]
        builder_mtu = s.reach["mtu"] if s.reach else None
        if mtu is None:
            interface = s.survey["builder_route"]["interface"] or "toward the builder"
            return FAIL, f"the MTU of interface {interface} could not be read; check /sys/class/net on this worker"
    if mtu != configured or (builder_mtu is not None and mtu != builder_mtu):
        builder_side = f", builder side {builder_mtu}" if builder_mtu is not None else ""
        toward = "the workers" if s.node.role == "builder" else "the builder"
        return FAIL, (
            f"MTU {mtu} toward {toward}{builder_side}, configured {configured}: large distcc transfers can stall; "
            f"set the interface MTU to {configured} (or set distcc_mtu to the network's MTU)"
        )
    return PASS, f"MTU {mtu}"


@check("H-NAMES", column="names", role="host",
       about="hostname unique in the cluster; the names distcc uses resolve here, not to loopback: on a worker the "
             "builder's, on the builder every worker's (FQDN optional)")
def host_names(s: Subject) -> tuple[str, str]:
    # distcc needs names that resolve, not FQDNs: stock Raspberry Pi OS has a
    # short hostname on a 127.0.1.1 line, and a home router resolves the rest.
    names = s.survey["names"]
    # Compared short: k3s node names and distcc's lock files go by them.
    me = names["hostname"].split(".")[0]
    others = {
        n: o["names"]["hostname"].split(".")[0]
        for n, o in s.cluster.surveys.items() if o and n != s.node.name and "names" in o
    }
    if me in others.values():
        twins = _list(n for n, other in others.items() if other == me)
        return FAIL, f"hostname {me} is also the hostname of {twins}; give every Pi its own (hostnamectl set-hostname)"
    # Only the names distcc uses here: a worker derives its --allow from the
    # builder's name, the builder's host list names every worker. (Asking
    # each worker about every other worker made the survey grow as N^2.)
    if s.node.role == "worker":
        needed = {s.settings.builder_address or s.cluster.builder.peer}
    else:
        needed = {w.peer for w in s.cluster.workers}
    peers = {n: a for n, a in names["resolves"].items() if n in needed}
    unresolved = sorted(n for n, addresses in peers.items() if not addresses)
    if unresolved:
        return FAIL, f"{me}: cannot resolve {_list(unresolved)}; add them to DNS (your router) or this host's /etc/hosts"
    loopback = sorted(n for n, addresses in peers.items() if any(IPv4Address(a).is_loopback for a in addresses))
    if loopback:
        return FAIL, (
            f"{me}: {_list(loopback)} resolve to a loopback address here (a 127.0.1.1 line in /etc/hosts names them); "
            f"remove them from that line so they resolve to their LAN addresses"
        )
    # A name that resolves, but to another host: its own addresses (the
    # resources section) are compared. The builder's jobs would go to
    # whoever holds that address; a worker would allow only that address.
    owners = {s.cluster.builder.peer: s.cluster.builder.name} | {w.peer: w.name for w in s.cluster.workers}
    wrong = []
    for name, addresses in sorted(peers.items()):
        other = s.cluster.surveys.get(owners.get(name, ""))
        theirs = ((other or {}).get("resources") or {}).get("addresses") or []
        if theirs and not set(addresses) & set(theirs):
            wrong.append(f"{name} to {', '.join(addresses)} but its addresses are {', '.join(theirs)}")
    if wrong:
        return FAIL, (
            f"{me} resolves {'; '.join(wrong)}: a stale or wrong line in this host's /etc/hosts, or a wrong DNS "
            f"record; fix it so each name resolves to that host's own address, then {HEAL}"
        )
    fqdn = names["fqdn"] if names["fqdn"] and "." in names["fqdn"] else "no domain"
    if s.node.role == "worker":
        return PASS, f"{me} ({fqdn}), resolves the builder's name {_list(peers)}"
    return PASS, f"{me} ({fqdn}), resolves all {len(peers)} worker names"


@check("H-K3S", column="k3s-off", role="host",
       about="no k3s process and no pod (containerd shim) left, k3s units stopped and disabled")
def host_k3s(s: Subject) -> tuple[str, str]:
    k3s = s.survey["k3s"]
    units = k3s["units"]
    active = sorted(u for u, unit in units.items() if unit["active"] not in ("inactive", "failed"))
    enabled = sorted(u for u, unit in units.items() if unit["enabled_state"] == "enabled")
    if active:
        return FAIL, f"{_list(active)} still {units[active[0]]['active']}; {HEAL}"
    if k3s["containerd_shims"] or k3s["k3s_processes"]:
        # k3s's units have KillMode=process: stopped, they leave every pod.
        fix = (
            HEAL if k3s["killall"] else "reinstall k3s (its install script writes k3s-killall.sh, which stops "
            f"them) or stop the pods, then {HEAL}"
        )
        return FAIL, (
            f"k3s is stopped but {k3s['k3s_processes']} k3s processes and {k3s['containerd_shims']} containerd-shim "
            f"processes (pods) still run, holding CPU and memory the build needs; {fix}"
        )
    if enabled:
        # The mode switch disables them: judged as it leaves them, since a
        # reboot would bring k3s and its pods back in the middle of build mode.
        return FAIL, f"{_list(enabled)} stopped but still enabled: a reboot starts k3s in build mode; {HEAL}"
    return PASS, f"stopped and disabled, no pod: {_list(units) or 'no k3s unit installed'}"


MIB = 1024**2

# The build tree's tmpfs. A kernel build's output grows to about 1.5-2 GiB for
# arm64 defconfig (objects, modules, a .cmd file per object), so a build
# started with less than a quarter of a 2-8 GiB tmpfs free is likely to stop
# with "No space left on device" (WARN); below 5% (at least 32 MiB) even an
# incremental build cannot write its objects (FAIL). Inodes likewise: a build
# writes about two files per object, tens of thousands in all.
TMPFS_WARN_FREE, TMPFS_FAIL_FREE, TMPFS_FAIL_FLOOR = 0.25, 0.05, 32 * MIB
INODES_WARN_FREE, INODES_FAIL_FREE = 0.10, 0.02

# Memory per job. cc1 on most kernel files stays under 150 MiB, the largest
# reach 200-250 MiB at -O2; with less than 128 MiB available per job a
# worker's jobs get OOM-killed (FAIL), below 192 MiB per job the larger files
# swap or get killed now and then (WARN). A CM3+ (1 GiB, 4 cores) with k3s
# stopped has about 800 MiB available: its 4 default jobs pass, as native -j4
# kernel builds on a Pi 3 do. The builder only preprocesses and links (cpp
# peaks near 50 MiB), but its tmpfs fills from the same memory, so what the
# tmpfs may still take is counted as spoken for.
WORKER_JOB_FAIL, WORKER_JOB_WARN = 128 * MIB, 192 * MIB
BUILDER_JOB_FAIL, BUILDER_JOB_WARN = 32 * MIB, 64 * MIB

# distccd's temporary files per job: the preprocessed source (up to ~10 MiB
# for the largest kernel units), the object and the compiler's output, about
# 32 MiB at worst: below that per job, jobs fail (FAIL); below twice that, a
# few large files at once can fill it (WARN). A private tmpfs /tmp on a CM3+
# (half of 1 GiB by default) passes with its 4 jobs.
DISTCCD_TMP_JOB_FAIL, DISTCCD_TMP_JOB_WARN = 32 * MIB, 64 * MIB
DISTCCD_TMP_FAIL_INODES = 100


def _mib(value: int) -> str:
    return f"{value // MIB} MiB"


@check("B-TMPFS-SPACE", column="tmpfs-free", role="builder",
       about="builder: space and inodes left in the build tmpfs (WARN under 25%/10% free, FAIL under 5%/2%)")
def builder_tmpfs_space(s: Subject) -> tuple[str, str]:
    mount, space, path = s.survey["mount"]["mount"], s.survey.get("tmpfs_space"), s.settings.tmpfs_path
    if mount is None or mount["fstype"] != "tmpfs" or not space or not space["total_bytes"]:
        return WARN, f"no tmpfs at {path} to measure (see B-TMPFS)"
    total, free = space["total_bytes"], space["free_bytes"] or 0
    inodes, free_inodes = space["total_inodes"], space["free_inodes"] or 0
    found = f"{path} has {_mib(free)} of {_mib(total)} free"
    if inodes:
        found += f" and {free_inodes} of {inodes} inodes"
    fix = (
        f"remove finished build trees from {path} (make clean, or delete old trees), or raise distcc_tmpfs_size "
        f"(it must fit in the builder's memory), then {HEAL}"
    )
    if free < max(total * TMPFS_FAIL_FREE, TMPFS_FAIL_FLOOR) or (inodes and free_inodes < inodes * INODES_FAIL_FREE):
        return FAIL, f"{found}: builds stop with No space left on device; {fix}"
    if free < total * TMPFS_WARN_FREE or (inodes and free_inodes < inodes * INODES_WARN_FREE):
        return WARN, f"{found}: a full kernel build may not fit; {fix}"
    return PASS, found


@check("H-MEMORY", column="memory", role="host",
       about="MemAvailable against the jobs the node runs (worker: 128/192 MiB a job; builder: 32/64 MiB a slot plus its tmpfs)")
def host_memory(s: Subject) -> tuple[str, str]:
    available = s.survey.get("memory_available")
    if available is None:
        return WARN, "MemAvailable could not be read from /proc/meminfo"
    if s.node.role == "worker":
        jobs = s.cluster.jobs(s.node) or s.survey["resources"]["cpus"]
        fail, warn, spoken = jobs * WORKER_JOB_FAIL, jobs * WORKER_JOB_WARN, 0
        fix = "lower distcc_jobs for this worker, then run deploys/mode_switch.py, or stop what holds the memory"
        what = f"{jobs} distccd jobs"
    else:
        jobs = sum(j for j in (s.cluster.jobs(w) for w in s.cluster.workers) if j)
        space = s.survey.get("tmpfs_space") or {}
        mount = s.survey["mount"]["mount"]
        # Only a tmpfs takes its space from memory; unmounted, df measures the disk beneath.
        spoken = (space.get("free_bytes") or 0) if mount and mount["fstype"] == "tmpfs" else 0
        fail, warn = jobs * BUILDER_JOB_FAIL, jobs * BUILDER_JOB_WARN + spoken
        fix = (
            "lower distcc_jobs (fewer slots) or distcc_tmpfs_size, then run deploys/mode_switch.py, or stop what "
            "holds the memory"
        )
        what = f"{jobs} slots" + (f" and {_mib(spoken)} the tmpfs may still take" if spoken else "")
    found = f"MemAvailable {_mib(available)} for {what}"
    if available < fail:
        return FAIL, f"{found} (need at least {_mib(fail)}): compiles get OOM-killed; {fix}"
    if available < warn:
        return WARN, f"{found} (want {_mib(warn)}): large compiles may swap or be OOM-killed; {fix}"
    return PASS, found


@check("W-TMP-SPACE", column="distccd-tmp", role="worker",
       about="worker: space and inodes in distccd's /tmp (its unit's own, else the host's): 32/64 MiB a job")
def worker_tmp_space(s: Subject) -> tuple[str, str]:
    tmp = s.survey.get("distccd_tmp")
    if not tmp or tmp["space"]["free_bytes"] is None:
        return WARN, "the space in distccd's /tmp could not be read (stat -f through /proc/PID/root)"
    jobs = s.cluster.jobs(s.node) or s.survey["resources"]["cpus"]
    free, free_inodes = tmp["space"]["free_bytes"], tmp["space"]["free_inodes"]
    where = "distccd's own /tmp" if tmp["where"] == "distccd" else "the host's /tmp (distccd is not running)"
    found = f"{where} has {_mib(free)} free for {jobs} jobs"
    fix = (
        "free space there (a private /tmp is emptied by restarting distccd: "
        "pyinfra INVENTORY deploys/worker_distccd_reset.py --data distcc_force_restart=True), or lower distcc_jobs"
    )
    few_inodes = free_inodes is not None and free_inodes < DISTCCD_TMP_FAIL_INODES
    if free < jobs * DISTCCD_TMP_JOB_FAIL or few_inodes:
        inodes = f" and {free_inodes} inodes" if few_inodes else ""
        return FAIL, f"{found}{inodes}: jobs fail with No space left on device; {fix}"
    if free < jobs * DISTCCD_TMP_JOB_WARN:
        return WARN, f"{found}: a few large files at once can fill it; {fix}"
    return PASS, found


# Stable check IDs, in table order, with what each looks at.
CHECKS = {spec.id: spec.about for spec in REGISTRY}
COLUMNS = {spec.id: spec.column for spec in REGISTRY}


# --- evaluation, table, report -----------------------------------------------------


def evaluate_cluster(cluster: Cluster) -> dict[str, list[Check]]:
    """Every check for every inventory node, from the surveys gathered."""
    results: dict[str, list[Check]] = {}
    for node in cluster.nodes:
        survey = cluster.surveys.get(node.name)
        if survey is None:
            why = cluster.unsurveyed.get(node.name, "could not connect or survey this host")
            results[node.name] = [Check(REACHABLE.id, FAIL, why)]
            continue
        subject = Subject(node, survey, cluster)
        results[node.name] = [
            Check(spec.id, *spec.evaluate(subject)) for spec in REGISTRY if spec.role in ("host", node.role)
        ]
    return results


def evaluate(surveys: dict[str, Survey | None], unsurveyed: dict[str, str] | None = None, inventory=inventory):
    return evaluate_cluster(Cluster.from_inventory(inventory, surveys, unsurveyed))


WIDE_HINT = "full table, one column per check: --data distcc_wide_tables=True"


def render_table(results: dict[str, list[Check]], roles: dict[str, str], wide: bool = False) -> str:
    """What validation prints, ASCII: by default one line per host (its role,
    how many checks gave ok, warn and FAIL, and its first problem) within
    tables.WIDTH columns at any cluster size; `wide` (distcc_wide_tables)
    gives the matrix of hosts by checks instead. Then one line per non-PASS
    check with its cause and fix, unwrapped, and the counts."""
    lines = _matrix(results) if wide else [*_host_lines(results, roles), WIDE_HINT]
    problems = [(n, c) for n, checks in results.items() for c in checks if c.result != PASS]
    if problems:
        lines.append("")
        for name, item in problems:
            lines.append(f"{item.result} {item.id} {name}: {item.detail}")
    counts = {r: sum(1 for checks in results.values() for c in checks if c.result == r) for r in (PASS, WARN, FAIL)}
    lines.append("")
    lines.append(f"validation: {counts[PASS]} PASS, {counts[WARN]} WARN, {counts[FAIL]} FAIL")
    return "\n".join(lines)


def first_problem(checks: list[Check]) -> Check | None:
    """The check a host's line names: its first FAIL in check order, else its
    first WARN (a FAIL is what stops the build, so it is named even after a WARN)."""
    return next((c for c in checks if c.result == FAIL), None) or next((c for c in checks if c.result == WARN), None)


def _host_lines(results: dict[str, list[Check]], roles: dict[str, str]) -> list[str]:
    rows = []
    for name, checks in results.items():
        count = {r: str(sum(1 for c in checks if c.result == r)) for r in (PASS, WARN, FAIL)}
        problem = first_problem(checks)
        rows.append((
            name, roles[name], count[PASS], count[WARN], count[FAIL],
            f"{problem.id}: {problem.detail}" if problem else "-",
        ))
    return narrow_table(("host", "role", "ok", "warn", "FAIL", "first problem"), rows, right=(2, 3, 4))


def _matrix(results: dict[str, list[Check]]) -> list[str]:
    """Hosts by checks: ok / FAIL / warn, '.' where a check does not apply,
    and the legend of the columns."""
    ids = [c for c in CHECKS if any(ch.id == c for checks in results.values() for ch in checks)]
    widths = {c: max(len(COLUMNS[c]), 4) for c in ids}
    width = max(len(h) for h in results)
    cell = {PASS: "ok", WARN: "warn", FAIL: "FAIL"}
    header = "host".ljust(width) + " | " + " ".join(COLUMNS[c].ljust(widths[c]) for c in ids)
    lines = [header.rstrip(), "-" * len(header.rstrip())]
    for name, checks in results.items():
        by_id = {c.id: c for c in checks}
        row = " ".join((cell[by_id[c].result] if c in by_id else ".").ljust(widths[c]) for c in ids)
        lines.append((name.ljust(width) + " | " + row).rstrip())
    lines.append("")
    lines.append("columns: " + ", ".join(f"{COLUMNS[c]}={c}" for c in ids))
    return lines


def write_report(path: str, results: dict[str, list[Check]]) -> Path:
    report = Path(path)
    report.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "checks": CHECKS,
        "hosts": {name: [asdict(c) for c in checks] for name, checks in results.items()},
        "failed": sorted({f"{c.id}@{n}" for n, checks in results.items() for c in checks if c.result == FAIL}),
    }
    report.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="ascii")
    return report


# --- the run ---------------------------------------------------------------------


def _survey_arguments(settings: Settings) -> dict:
    # The names distcc uses here (see H-NAMES): the builder resolves the
    # workers, a worker the builder, so no survey grows with the others.
    if role_of(host) == "builder":
        names = [peer_name(w) for w in worker_hosts(inventory)]
    else:
        names = [builder_peer(settings)]
    arguments = {
        "names": names,
        "port": settings.port,
        "k3s_units": list(settings.k3s_units),
    }
    if role_of(host) == "builder":
        arguments.update(
            tmpfs_path=settings.tmpfs_path,
            build_user=settings.build_user,
            workers=[peer_name(w) for w in worker_hosts(inventory)],
            profile_script=PROFILE_SCRIPT,
            sent_names=[*INVOKED_NAMES, *settings.cross_compilers],
            cross_compilers=list(settings.cross_compilers),
        )
        if settings.ccache:
            arguments["ccache"] = True
        if settings.pump:
            arguments["pump"] = True
    else:
        arguments["builder_peer"] = builder_peer(settings)
        arguments["log_dir"] = settings.log_dir
    return arguments


NOT_CONNECTED = (
    "pyinfra could not connect (its error is above); check that the host is up and sshd runs on it, and its "
    "address, SSH user and key in the inventory"
)
SURVEY_FAILED = (
    "connected, but the survey command failed (pyinfra's output above shows its error); check that the SSH "
    "user has passwordless sudo and that sh, bash and iproute2 are installed"
)


def survey_hosts(run_state, hosts: list) -> tuple[dict[str, Survey | None], dict[str, str]]:
    """One survey command on each host."""
    answers = on_each(run_state, hosts, lambda node: node.get_fact(HostSurvey, **_survey_arguments(settings_for(node))))
    surveys: dict[str, Survey | None] = dict(answers)  # type: ignore[arg-type]
    unsurveyed = {name: SURVEY_FAILED for name, survey in surveys.items() if survey is None}
    return surveys, unsurveyed


def read_gcc_packages(run_state, hosts: list, surveys: dict[str, Survey | None], builder_name: str) -> None:
    """Where gcc_package_reads says H-GCC will name packages, a second
    command on those hosts only, into their surveys; a host that fails it
    keeps its survey, and its H-GCC FAIL names no package."""
    wanted = set(gcc_package_reads(surveys, builder_name))
    readers = [node for node in hosts if node.name in wanted]
    if not readers:
        return
    for name, package in on_each(run_state, readers, lambda node: node.get_fact(GccPackage)).items():
        survey = surveys[name]
        if survey is not None and package is not None:
            survey["gcc_package"] = package  # type: ignore[typeddict-item]


@deploy("cluster distcc validate")
def cluster_distcc_validate():
    """Survey every host once, then evaluate, print and report every check."""
    check_inventory(inventory)
    settings_for(host)
    run_state = ctx_state.get()
    if not first_loader(run_state, "validation"):
        return
    cluster = Cluster.from_inventory(inventory, {})
    active = list(run_state.inventory.get_active_hosts())
    surveys, unsurveyed = survey_hosts(run_state, active)
    read_gcc_packages(run_state, active, surveys, cluster.builder.name)
    active_names = {h.name for h in active}
    for node in cluster.nodes:
        if node.name not in active_names:
            unsurveyed[node.name] = NOT_CONNECTED
    cluster.surveys, cluster.unsurveyed = surveys, unsurveyed
    results = evaluate_cluster(cluster)
    report = write_report(cluster.builder.settings.report_path, results)
    roles = {node.name: node.role for node in cluster.nodes}
    table = render_table(results, roles, wide=cluster.builder.settings.wide_tables)
    print("\n" + table + f"\nreport: {report}\n", file=sys.stderr, flush=True)
    failed = [f"{c.id} on {n}" for n, checks in results.items() for c in checks if c.result == FAIL]
    if failed:
        raise ValidationFailed(
            f"validation: {len(failed)} checks FAILED ({'; '.join(failed)}). The table above says what was found "
            f"and how to fix each; the JSON report is {report}."
        )
