"""The worker's own checks (W-*): distccd running and listening, its
override as this package renders it, the compiler names the builder sends
linked and the same compilers, its --allow, the user it runs as, and the
space in its /tmp. Whether the builder reaches it is in reach.py.
"""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Network

from deploys.library.settings import compiler_package
from deploys.library.validation.checks.host import SAME_RELEASE_FIX, release_mismatch, target_fix
from deploys.library.validation.model import DISTCC_DIR, FAIL, HEAL, MIB, PASS, WARN, Subject, check, denied_paths, listed, mib
from deploys.library.worker import override_text
from facts.distcc import EVERY_ADDRESS, foreign_listeners, holder_text
from facts.survey import Survey
from operations.distcc import UNIT
from operations.systemd import dropin_path


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
        found = listed(f"{sock['address']}:{sock['port']}" for sock in listening) or "nothing"
        return FAIL, f"active but not listening on {address}:{port} (found {found}); {HEAL}"
    unwritable = denied_paths(s.survey.get("distccd_access", []), "write", prefix=s.settings.log_dir)
    if unwritable:
        # distccd then logs to stderr (the journal) and serves on: its job
        # lines are not where the smoke test and the build report read them.
        return FAIL, (
            f"pid {unit['main_pid']} listening on {address}:{port}, but user distccd cannot write "
            f"{listed(unwritable)}: distccd logs to the journal instead, where the smoke test and the build report "
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
    return f"`{name}`" + (f" (what the builder sends for {listed(others)})" if others else "")


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
    unreadable = denied_paths(s.survey.get("distccd_access", []), "read", (DISTCC_DIR,))
    if unreadable:
        return FAIL, (
            f"user distccd cannot read {unreadable[0]}, so distccd finds no compiler it may run and refuses every "
            f"job; make it readable (chmod 755 {DISTCC_DIR}), then {HEAL}"
        )
    missing = sorted(n for n in wanted if n not in links)
    others = s.survey["masquerade"]["other_entries"]
    if missing:
        named = listed(_sent_by(n, sent.get(n, [])) for n in missing)
        return FAIL, f"{DISTCC_DIR} lacks {named}, so every job the builder sends with it is refused; {HEAL}"
    if others:
        return WARN, f"{DISTCC_DIR} also holds non-links {listed(others)}; remove them"
    return PASS, f"the {len(wanted)} compiler names the builder sends are linked: {listed(sorted(wanted))}"


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
                target_fix(builder_arch, their_machine, arch),
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
            f"cannot compare {listed(f'`{n}`' for n in uncompared)}: the builder cannot run it (not installed there; "
            f"see B-PATH on the builder)"
        )
    shown = listed(
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


# distccd's temporary files per job: the preprocessed source (up to ~10 MiB
# for the largest kernel units), the object and the compiler's output, about
# 32 MiB at worst: below that per job, jobs fail (FAIL); below twice that, a
# few large files at once can fill it (WARN). A private tmpfs /tmp on a CM3+
# (half of 1 GiB by default) passes with its 4 jobs.
DISTCCD_TMP_JOB_FAIL, DISTCCD_TMP_JOB_WARN = 32 * MIB, 64 * MIB
DISTCCD_TMP_FAIL_INODES = 100


@check("W-TMP-SPACE", column="distccd-tmp", role="worker",
       about="worker: space and inodes in distccd's /tmp (its unit's own, else the host's): 32/64 MiB a job")
def worker_tmp_space(s: Subject) -> tuple[str, str]:
    tmp = s.survey.get("distccd_tmp")
    if not tmp or tmp["space"]["free_bytes"] is None:
        return WARN, "the space in distccd's /tmp could not be read (stat -f through /proc/PID/root)"
    jobs = s.cluster.jobs(s.node) or s.survey["resources"]["cpus"]
    free, free_inodes = tmp["space"]["free_bytes"], tmp["space"]["free_inodes"]
    where = "distccd's own /tmp" if tmp["where"] == "distccd" else "the host's /tmp (distccd is not running)"
    found = f"{where} has {mib(free)} free for {jobs} jobs"
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
