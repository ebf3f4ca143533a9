"""The checks of every node (H-*): gcc as the builder's, the MTU toward
the builder, the names distcc uses, k3s stopped, and the memory for the
jobs the node runs. Also which hosts H-GCC's FAILs need a second read on
(gcc_package_reads), and the gcc wording W-COMPILERS shares.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from deploys.library.validation.model import FAIL, HEAL, MIB, PASS, WARN, Subject, check, listed, mib
from facts.compiler import Identity
from facts.survey import Survey


def target_fix(builder_arch: str | None, builder_machine: str | None, arch: str | None) -> str:
    """The fix for a compiler built for another CPU than the builder's
    (H-GCC and W-COMPILERS name it alike)."""
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
            f"{target_fix(theirs['dpkg_architecture'], theirs['gcc_machine'], mine['dpkg_architecture'])}"
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
            return FAIL, f"the builder cannot resolve {listed(unresolved)}: add them to DNS or the builder's /etc/hosts"
        if unrouted:
            return FAIL, f"the builder has no route to {listed(unrouted)}: add one (ip route) or fix its network"
        if len(mtus) > 1:
            by_peer = listed(f"{r['peer']} {r['mtu']}" for r in probes)
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
        twins = listed(n for n, other in others.items() if other == me)
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
        return FAIL, f"{me}: cannot resolve {listed(unresolved)}; add them to DNS (your router) or this host's /etc/hosts"
    loopback = sorted(n for n, addresses in peers.items() if any(IPv4Address(a).is_loopback for a in addresses))
    if loopback:
        return FAIL, (
            f"{me}: {listed(loopback)} resolve to a loopback address here (a 127.0.1.1 line in /etc/hosts names them); "
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
        return PASS, f"{me} ({fqdn}), resolves the builder's name {listed(peers)}"
    return PASS, f"{me} ({fqdn}), resolves all {len(peers)} worker names"


@check("H-K3S", column="k3s-off", role="host",
       about="no k3s process and no pod (containerd shim) left, k3s units stopped and disabled")
def host_k3s(s: Subject) -> tuple[str, str]:
    k3s = s.survey["k3s"]
    units = k3s["units"]
    active = sorted(u for u, unit in units.items() if unit["active"] not in ("inactive", "failed"))
    enabled = sorted(u for u, unit in units.items() if unit["enabled_state"] == "enabled")
    if active:
        return FAIL, f"{listed(active)} still {units[active[0]]['active']}; {HEAL}"
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
        return FAIL, f"{listed(enabled)} stopped but still enabled: a reboot starts k3s in build mode; {HEAL}"
    return PASS, f"stopped and disabled, no pod: {listed(units) or 'no k3s unit installed'}"


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
        what = f"{jobs} slots" + (f" and {mib(spoken)} the tmpfs may still take" if spoken else "")
    found = f"MemAvailable {mib(available)} for {what}"
    if available < fail:
        return FAIL, f"{found} (need at least {mib(fail)}): compiles get OOM-killed; {fix}"
    if available < warn:
        return WARN, f"{found} (want {mib(warn)}): large compiles may swap or be OOM-killed; {fix}"
    return PASS, found
