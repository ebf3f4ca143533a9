"""The builder's checks (B-*): its build tmpfs, distccd off, the distcc
client and its host list, the masquerade on the build user's login PATH,
kbuild's ARCH, ccache and pump mode when asked for, the slots distcc sees,
and the space left in the tmpfs.
"""

from __future__ import annotations

from deploys.library.builder import (
    CCACHE_TEMPDIR,
    CCACHE_TMPFILES,
    PROFILE_SCRIPT,
    PUMP_OPTIONS,
    ccache_dir,
    login_drift,
    pump_host_entry,
)
from deploys.library.settings import compiler_package, tmpfs_size_for
from deploys.library.validation.model import DISTCC_DIR, FAIL, HEAL, MIB, PASS, WARN, Subject, check, denied_paths, listed, mib
from facts.mounts import hidden_mount_fix, mount_hidden
from operations.distcc import UNIT
from operations.mounts import fstab_entry, parse_size, tmpfs_bytes

# Debian's ccache links every compiler name it finds here.
CCACHE_LINKS = "/usr/lib/ccache"


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
        problems.append(f"distccd processes run (pids {listed(p['pid'] for p in running)})")
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
    unwritable = denied_paths(login.get("denied") or [], "write", (log,)) if log else []
    if unwritable:
        return WARN, (
            f"distcc installed, but the build user {s.settings.build_user} cannot write its client log "
            f"{unwritable[0]}: the build report cannot count the builder's jobs; remove the file (the next "
            f"build starts it anew) or give it to {s.settings.build_user}"
        )
    return PASS, "distcc installed"


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
        return WARN, f"cannot compare: no survey from {listed(unknown)}"
    # What distcc needs under its directory, tried as the build user: a host
    # list it cannot read is skipped in silence (distcc then uses
    # /etc/distcc/hosts, or localhost), and without its lock and state
    # directories it cannot keep its slots and backoff.
    state = login["build_env"].get("DISTCC_DIR") or f"{login['home']}/.distcc"
    unreadable = denied_paths(login["denied"], "read", (f"{state}/hosts",))
    unwritable = denied_paths(login["denied"], "write", (state, f"{state}/lock", f"{state}/state"))
    if unreadable:
        return FAIL, (
            f"the build user {user} cannot read {unreadable[0]}, so distcc skips it and uses its default host "
            f"list ({' '.join(shown) or 'none'}); the mode switch writes it owned by {user}, mode 644: {HEAL}"
        )
    if unwritable:
        return FAIL, (
            f"the build user {user} cannot write {listed(unwritable)}, where distcc keeps its locks and backoff "
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
    unreadable = denied_paths(login["denied"], "read", prefix="/etc/profile.d/")
    unsearchable = denied_paths(login["denied"], "search", (DISTCC_DIR,))
    if unreadable or unsearchable:
        found = [f"cannot read {listed(unreadable)}, which the login shell then skips"] if unreadable else []
        found += [f"cannot search {listed(unsearchable)}, so no compiler name finds the masquerade"] if unsearchable else []
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
        return PASS, f"{listed(sorted(login['compilers']))} run {front}{through} ({where} on {user}'s login PATH)"
    cross = _cross_problems(s, wrong)
    rest = {name: found for name, found in wrong.items() if name not in cross}
    return FAIL, "; ".join([*cross.values(), *([_path_problem(s, rest)] if rest or not cross else [])])


def _path_problem(s: Subject, wrong: dict[str, str | None]) -> str:
    """Why these compiler names do not run the masquerade on the build user's
    login PATH, with the fix."""
    login, user = s.survey["login"], s.settings.build_user
    path = login["path"]
    shown = ":".join(path[:4]) or "empty"
    resolved = listed(f"{name} -> {found or 'nothing'}" for name, found in sorted(wrong.items()))
    profile = s.survey.get("profile")
    if profile is not None and not (profile["present"] and profile["sets_path"]):
        return f"{user}'s login shell runs {resolved}: {PROFILE_SCRIPT} is missing or does not set PATH; {HEAL}"
    ccached = sorted(name for name, found in wrong.items() if (found or "").startswith(f"{CCACHE_LINKS}/"))
    if ccached and not s.settings.ccache:
        return (
            f"{user}'s login shell runs {listed(ccached)} through ccache ({CCACHE_LINKS} comes before {DISTCC_DIR} on "
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
            f"the cache {directory} holds {mib(used)} of its {s.settings.ccache_size} cap, but its filesystem has "
            f"only {mib(free)} free: it cannot grow to the cap; free space there or lower distcc_ccache_size"
        )
    return PASS, f"{directory}: {mib(used)} of {s.settings.ccache_size}, distcc behind it, depend mode, no compression"


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


# The build tree's tmpfs. A kernel build's output grows to about 1.5-2 GiB for
# arm64 defconfig (objects, modules, a .cmd file per object), so a build
# started with less than a quarter of a 2-8 GiB tmpfs free is likely to stop
# with "No space left on device" (WARN); below 5% (at least 32 MiB) even an
# incremental build cannot write its objects (FAIL). Inodes likewise: a build
# writes about two files per object, tens of thousands in all.
TMPFS_WARN_FREE, TMPFS_FAIL_FREE, TMPFS_FAIL_FLOOR = 0.25, 0.05, 32 * MIB
INODES_WARN_FREE, INODES_FAIL_FREE = 0.10, 0.02


@check("B-TMPFS-SPACE", column="tmpfs-free", role="builder",
       about="builder: space and inodes left in the build tmpfs (WARN under 25%/10% free, FAIL under 5%/2%)")
def builder_tmpfs_space(s: Subject) -> tuple[str, str]:
    mount, space, path = s.survey["mount"]["mount"], s.survey.get("tmpfs_space"), s.settings.tmpfs_path
    if mount is None or mount["fstype"] != "tmpfs" or not space or not space["total_bytes"]:
        return WARN, f"no tmpfs at {path} to measure (see B-TMPFS)"
    total, free = space["total_bytes"], space["free_bytes"] or 0
    inodes, free_inodes = space["total_inodes"], space["free_inodes"] or 0
    found = f"{path} has {mib(free)} of {mib(total)} free"
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
