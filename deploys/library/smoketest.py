"""A real distributed compile on every worker, proven from both ends.

distcc fails quietly: a job it cannot send is compiled on the builder with
exit 0. So the builder compiles a source file carrying a unique marker once
per worker with gcc, then once more with each compiler named in
distcc_cross_compilers (e.g. aarch64-linux-gnu-gcc), with DISTCC_HOSTS set to
that worker alone, DISTCC_FALLBACK=0 and a timeout (distcc 3.4 can retry
forever), while each worker watches its own cc1 processes (the Cc1Processes
fact, from the process tables it takes) and distccd log. A worker PASSes only
when, for each compiler:
- the client's verbose log says the job compiled on that worker;
- that worker's distccd log has COMPILE_OK for this very file, from the
  builder's address;
- the object's .comment and ELF header (the target) equal those of what the
  builder's own compiler of that name makes;
- for gcc, the program linked from it runs on the builder and prints the
  marker (a cross object cannot run there);
- a cc1 that distccd ran through that compiler's driver was seen on the worker.
Then the build user's real path: in a login shell (so with the profile's
masquerade PATH, host list and fallback setting) inside the tmpfs, `make
-j$(distcc -j)` builds a small multi-file project with the plain name `cc`.
Its client log (parsed as the build report parses it) must show jobs on every
worker and no local compile of a distributable file; a worker that got none
FAILs, and so does the builder when any such file compiled locally. On a
builder without make (nothing to build with) this part is reported as not
run, naming the fix.
A FAIL names the cause read from the worker's log. Nothing is left behind:
the work directory under the tmpfs is removed, and no process outlives it.
"""

from __future__ import annotations

import re
import sys
import uuid
from dataclasses import dataclass

from pyinfra import host, inventory, state
from pyinfra.api import QuoteString, StringCommand, deploy, operation
from pyinfra.operations import python, server

from deploys.library.cluster import builder_host, check_inventory, peer_name, role_of, run_cache, worker_hosts
from deploys.library.report import NOT_DISTRIBUTABLE, ClientJobs, parse_client_log
from deploys.library.settings import compiler_package, settings_for
from deploys.library.tables import narrow_table
from facts._templates import render_script
from facts.distcc import Cc1Process, Cc1Processes
from operations._printed import printf_wrapped, wrapped

# The real-path project: this many files per slot of the host list, so that
# every slot gets work while make keeps `distcc -j` jobs in flight.
FILES_PER_SLOT = 2
# A worker keeps the process table of at most this many new cc1s (a busy
# worker runs other jobs' too).
MAX_TABLES = 20
# The real-path build is several compiles one after another per slot.
REAL_PATH_TIMEOUTS = 4
EVIDENCE_HINT = "each compile's evidence, on one line: --data distcc_wide_tables=True"


@dataclass
class Verdict:
    worker: str
    result: str
    evidence: list[str]
    cause: str


def _run() -> dict:
    """This run's marker, outputs and verdicts, kept per pyinfra State
    (run_cache), so a second run in the same process starts afresh."""
    run = run_cache(state, "smoke test")
    if not run:
        run.update(marker=uuid.uuid4().hex[:12], outputs={}, verdicts={})
    return run


NATIVE = "gcc"


def compilers_tested(cross) -> list[str]:
    """The native gcc, then each cross compiler named in distcc_cross_compilers."""
    return [NATIVE, *(c for c in dict.fromkeys(cross) if c != NATIVE)]


def job_id(index: int, compiler: str, compilers: list[str]) -> str:
    """The key of one compile in the scripts' output: the worker's index for
    the native gcc, index.N for the Nth compiler named in distcc_cross_compilers."""
    position = compilers.index(compiler)
    return str(index) if position == 0 else f"{index}.{position}"


def builder_script(
    marker: str, tmpfs_path: str, workers: list[tuple[str, int]], timeout: int = 60, cross: list[str] = (),
    pump: bool = False, functions: int = 400,
) -> str:
    """The builder's side (templates/smoke-builder.sh.j2): for each worker in
    parallel, one compile with the native gcc, then one with each cross
    compiler, of a program of `functions` functions (distcc_smoke_functions);
    every output line is `ID key value` for the job with that ID (job_id)."""
    compilers = compilers_tested(cross)
    context = {
        "marker": marker, "tmpfs_path": tmpfs_path, "functions": int(functions), "timeout": int(timeout),
        "compilers": compilers,
        "workers": [
            {
                "index": index, "name": name, "hosts": f"{name}:{int(port)}/1",
                "jobs": [
                    {
                        "id": job_id(index, compiler, compilers), "compiler": compiler, "position": position,
                        "native": compiler == NATIVE, "base": "base.c" if compiler == NATIVE else "base-cross.c",
                    }
                    for position, compiler in enumerate(compilers)
                ],
            }
            for index, (name, port) in enumerate(workers)
        ],
        "real_path": real_path_script(timeout, pump),
    }
    return render_script("smoke-builder.sh.j2", context)


def real_path_script(timeout: int, pump: bool = False) -> str:
    """As the build user in a login shell: make -j through the masquerade
    (templates/smoke-real-path.sh.j2). Output lines: `R rc N`, `R slots N`,
    `R files N` and `R log LINE`. With distcc_pump, the same files again
    under distcc-pump: `P rc N`, `P log LINE`."""
    context = {"files_per_slot": FILES_PER_SLOT, "timeout": int(timeout) * REAL_PATH_TIMEOUTS, "pump": pump}
    return render_script("smoke-real-path.sh.j2", context)


def _list(items) -> str:
    return ", ".join(str(i) for i in items)


@dataclass
class RealPath:
    rc: str
    slots: str
    files: str
    jobs: ClientJobs
    ran: bool = True

    def local_distributable(self) -> int:
        return sum(n for reason, n in self.jobs.local.items() if reason != NOT_DISTRIBUTABLE)


def real_path_result(builder_lines: list[str], prefix: str = "R") -> RealPath:
    """The real path's outcome (prefix R), or the pump path's (P)."""
    facts = {}
    log = []
    pump_not_run = prefix != "R" and not any(line.startswith(f"{prefix} rc ") for line in builder_lines)
    if "R nomake" in builder_lines or pump_not_run:
        return RealPath("-", "-", "-", parse_client_log([]), ran=False)
    for line in builder_lines:
        if not line.startswith(f"{prefix} "):
            continue
        key, _, value = line[2:].partition(" ")
        if key == "log":
            log.append(value)
        else:
            facts[key] = value
    return RealPath(facts.get("rc", "?"), facts.get("slots", "?"), facts.get("files", "?"), parse_client_log(log))


def worker_script(marker: str, log_file: str, seconds: int, jobs: int = 1) -> str:
    """The worker's side (templates/smoke-worker.sh.j2): until its `jobs`
    jobs are logged (or `seconds` have passed), take the process table
    (Cc1Processes' own command) whenever a cc1 appears that was not seen
    before; then print those tables (`psN LINE`) and the log lines written
    meanwhile."""
    context = {
        "marker": marker, "log_file": log_file, "seconds": int(seconds), "jobs": int(jobs),
        "max_tables": MAX_TABLES, "ps_command": Cc1Processes.command,
    }
    return render_script("smoke-worker.sh.j2", context)


def distccd_cc1(worker_lines: list[str]) -> list[Cc1Process]:
    """Every cc1 the worker saw that a distccd ran (through the compiler
    driver): each process table parsed by the Cc1Processes fact."""
    tables: dict[str, list[str]] = {}
    for line in worker_lines:
        key, _, rest = line.partition(" ")
        if key.startswith("ps") and key[2:].isdigit():
            tables.setdefault(key, []).append(rest)
    found: dict[int, Cc1Process] = {}
    for table in tables.values():
        for process in Cc1Processes().process(table):
            if process["parent_is_distccd"] and process["user"] == "distccd":
                found.setdefault(process["pid"], process)
    return list(found.values())


def _driver(process: Cc1Process) -> str:
    return (process["parent_command"] or "").split(" ", 1)[0].rsplit("/", 1)[-1]


_CAUSES = [
    (re.compile(r"not in .*whitelist"), "the compiler is not in the worker's /usr/lib/distcc whitelist"),
    (re.compile(r"denied by access list"), "the builder is denied by the worker's access list (--allow)"),
    (re.compile(r"No space left"), "no space left on the worker for the job's temporary files"),
    (re.compile(r"COMPILE_ERROR"), "the compiler failed on the worker"),
    (re.compile(r"COMPILE_TIMEOUT"), "the job timed out on the worker"),
]


def _job_lines(builder_lines: list[str], job: str) -> tuple[dict[str, str], list[str]]:
    facts: dict[str, str] = {}
    client = []
    for line in builder_lines:
        if not line.startswith(f"{job} "):
            continue
        key, _, value = line.split(" ", 1)[1].partition(" ")
        if key == "client":
            client.append(value)
        elif key == "stderr":
            facts.setdefault("stderr", value)
        else:
            facts[key] = value
    return facts, client


def _about_this_compiler(line: str, compiler: str, cross: list[str]) -> bool:
    """Whether a worker log line may explain this compiler's job: the log is
    shared by the worker's jobs, and a whitelist refusal names its compiler."""
    if "whitelist" not in line:
        return True
    if compiler == NATIVE:
        return not any(f"{name} not in" in line for name in cross)
    return f"{compiler} not in" in line


def judge(
    worker: str, index: int, marker: str, builder_lines: list[str], worker_lines: list[str], timeout: int = 60,
    compiler: str = NATIVE, cross: list[str] = (),
) -> Verdict:
    """One compile on one worker: with the native gcc (the object must link
    and run on the builder) or with a cross compiler from
    distcc_cross_compilers (the object must be what the builder's compiler of
    that name makes, .comment and ELF header)."""
    compilers = compilers_tested(cross)
    job = job_id(index, compiler, compilers)
    facts, client = _job_lines(builder_lines, job)
    builder_address = _job_lines(builder_lines, str(index))[0].get("source", "?")
    logs = [line[4:] for line in worker_lines if line.startswith("log ")]
    source = f"smoke-{marker}-{job}.c"
    evidence, problems = [], []

    if any(f"compiled on {worker}" in c or f"on {worker} completed ok" in c for c in client) and facts.get("rc") == "0":
        evidence.append("client: compiled on worker")
    else:
        problems.append(f"client exit {facts.get('rc', '?')}: " + (client[-1] if client else "no distcc output"))
    if any("COMPILE_OK" in line and source in line and f"client: {builder_address}:" in line for line in logs):
        evidence.append(f"worker log: COMPILE_OK from {builder_address}")
    else:
        problems.append("no COMPILE_OK for this job in the worker's log")
    if facts.get("comment", "").startswith("same"):
        evidence.append(f".comment = builder's {compiler}")
    else:
        problems.append(f".comment {facts.get('comment', 'missing (no object)')}")
    if facts.get("elf", "").startswith("same"):
        evidence.append(f"ELF = builder's ({facts['elf'].removeprefix('same').strip()})")
    else:
        problems.append(f"ELF {facts.get('elf', 'missing (no object)')}")
    if compiler == NATIVE:
        if facts.get("run") == f"distcc smoke {marker}":
            evidence.append("program ran")
        else:
            printed = facts.get("run")
            problems.append("the program linked from the object did not print the marker"
                            + (f" (it printed: {printed})" if printed else ""))
    # The remote job's cc1, run by distccd through this compiler's driver
    # (for the native job: any driver but a cross compiler's).
    ran = [
        p for p in distccd_cc1(worker_lines)
        if (_driver(p) == compiler if compiler != NATIVE else _driver(p) not in compilers[1:])
    ]
    if ran:
        evidence.append(f"cc1 under distccd seen on worker (pid {ran[0]['pid']}, {_driver(ran[0])})")
    else:
        problems.append(f"no cc1 of {compiler} run by distccd seen on the worker")

    if not problems:
        return Verdict(worker, "PASS", evidence, "")
    mine = [line for line in logs if _about_this_compiler(line, compiler, compilers[1:])]
    cause = next((why for pattern, why in _CAUSES if any(pattern.search(line) for line in mine)), None)
    # distcc 3.4 connects while it preprocesses, so a worker whose log names
    # the file may still never have compiled it.
    if cause is None and facts.get("stderr") and not any(source in line and "COMPILE_" in line for line in logs):
        cause = (
            f"{compiler} failed on the builder before the job was sent (distcc preprocesses there): "
            f"{facts['stderr']}; repair the builder's {compiler}: reinstall Debian's {compiler_package(compiler)} and "
            f"the compiler packages it depends on there (apt-get install --reinstall)"
        )
    if cause is None and facts.get("rc") == "124":
        cause = (
            f"the compile did not finish within distcc_smoke_timeout ({timeout} s): the worker is slower than "
            f"that (raise distcc_smoke_timeout for slow or emulated workers) or the job hung"
        )
    if cause is None and not logs:
        cause = "no job reached the worker's distccd (not running, unreachable or filtered): " + (
            client[-1] if client else "no client output"
        )
    return Verdict(worker, "FAIL", evidence, cause or "; ".join(problems))


def judge_worker(
    worker: str, index: int, marker: str, builder_lines: list[str], worker_lines: list[str], timeout: int = 60,
    cross: list[str] = (),
) -> list[tuple[str, Verdict]]:
    """Each compiler's verdict on one worker: the native gcc's, then each
    cross compiler's."""
    return [
        (compiler, judge(worker, index, marker, builder_lines, worker_lines, timeout, compiler, cross))
        for compiler in compilers_tested(cross)
    ]


def worker_verdict(worker: str, jobs: list[tuple[str, Verdict]]) -> Verdict:
    """The worker PASSes when every compiler's job did; else the first FAIL,
    its cause naming the cross compiler it is about."""
    for compiler, verdict in jobs:
        if verdict.result != "PASS":
            cause = verdict.cause if compiler == NATIVE else f"{compiler}: {verdict.cause}"
            return Verdict(worker, "FAIL", verdict.evidence, cause)
    return Verdict(worker, "PASS", [e for _, verdict in jobs for e in verdict.evidence], "")


def _lines(meta) -> list[str]:
    try:
        return [line.strip() for line in meta.stdout_lines]
    except Exception:  # the op did not run on that host (failed or skipped)
        return []


@dataclass
class SmokeOutcome:
    """What the smoke test found: each worker's compiles and verdict, the
    builder's (the real path's) and the real and pump paths themselves."""
    marker: str
    cross: list[str]
    jobs: dict[str, list[tuple[str, Verdict]]]
    verdicts: dict[str, Verdict]
    builder: Verdict
    real: RealPath
    pumped: RealPath
    real_ok: bool
    pump_problem: str | None
    local: int
    why: str


def smoke_outcome(
    marker: str, builder: str, workers: list[str], builder_lines: list[str], worker_lines: dict[str, list[str]],
    timeout: int = 60, cross: list[str] = (),
) -> SmokeOutcome:
    """Every verdict, from the builder's and each worker's output lines
    (workers in the order the builder's script numbers them)."""
    setup = [line for line in builder_lines if line.startswith("setup ")]
    real = real_path_result(builder_lines)
    all_jobs, verdicts = {}, {}
    for index, name in enumerate(workers):
        if setup:
            jobs = [(NATIVE, Verdict(name, "FAIL", [], setup[0][6:]))]
        else:
            jobs = judge_worker(name, index, marker, builder_lines, worker_lines.get(name, []), timeout, list(cross))
        verdict = worker_verdict(name, jobs)
        real_jobs = real.jobs.remote_ok.get(name, 0)
        if setup or not real.ran:
            pass
        elif real_jobs:
            jobs[0][1].evidence.append(f"real path: {real_jobs} jobs")
        elif verdict.result == "PASS":
            verdict = Verdict(name, "FAIL", verdict.evidence,
                              "no job of the build user's make -j reached this worker (see the real-path line)")
            jobs[0] = (NATIVE, Verdict(name, "FAIL", jobs[0][1].evidence, verdict.cause))
        all_jobs[name], verdicts[name] = jobs, verdict
    local = real.local_distributable()
    why = "; ".join(f"{n} {text}" for text, n in sorted(real.jobs.local_detail.items())
                    if not text.startswith(NOT_DISTRIBUTABLE)) or "none"
    builder_ok = not real.ran or (not setup and real.rc == "0" and local == 0 and real.jobs.remote_total > 0)
    pumped = real_path_result(builder_lines, "P")
    pump_problem = _pump_problem(pumped) if pumped.ran else None
    cause = "" if builder_ok else (
        f"the build user's make -j exited {real.rc}, {local} distributable files compiled on the builder ({why})"
    )
    real_ok = builder_ok
    if builder_ok and pump_problem:
        builder_ok, cause = False, pump_problem
    return SmokeOutcome(
        marker, list(cross), all_jobs, verdicts, Verdict(builder, "PASS" if builder_ok else "FAIL", [], cause),
        real, pumped, real_ok, pump_problem, local, why,
    )


def _paths(outcome: SmokeOutcome) -> list[str]:
    """The real path's and the pump path's lines, one paragraph each."""
    real, pumped = outcome.real, outcome.pumped
    if not real.ran:
        out = ["real path: not run, make is not installed on the builder (a build needs it: apt install make)"]
    else:
        out = [
            f"real path (build user, login shell, make -j{real.slots}, {real.files} files): "
            f"{real.jobs.remote_total} of {real.jobs.compile_jobs} compile jobs on workers, {outcome.local} "
            f"distributable compiled locally (fallback {outcome.why}), make exit {real.rc}: "
            f"{'PASS' if outcome.real_ok else 'FAIL'}"
        ]
    if pumped.ran:
        jobs = pumped.jobs
        fell = sum(jobs.pump_fallback.values())
        out.append(
            f"pump path (build user, DISTCC_HOSTS=$DISTCC_PUMP_HOSTS distcc-pump make -j{real.slots} "
            f"CC='distcc gcc'): {jobs.pumped} of "
            f"{jobs.compile_jobs} compile jobs preprocessed and compiled on workers, {fell} preprocessed here"
            f"{' (' + '; '.join(jobs.pump_fallback) + ')' if fell else ''}, make exit {pumped.rc}: "
            f"{'FAIL' if outcome.pump_problem else 'PASS'}"
        )
    return out


def render_smoke(outcome: SmokeOutcome, wide: bool = False) -> str:
    """What the smoke test prints. By default a line per worker within
    WIDTH columns (each compiler's PASS or FAIL, and its jobs on the real
    path), then each FAIL's cause and the two paths, wrapped; `wide`
    (distcc_wide_tables) gives a line per compile with all its evidence,
    and every paragraph on one line."""
    compilers = compilers_tested(outcome.cross)
    if wide:
        each = f"gcc and {_list(outcome.cross)}" if outcome.cross else "gcc"
        width = max(len(name) for name in outcome.verdicts)
        out = ["", f"smoke test (marker {outcome.marker}): one compile per worker with {each}, DISTCC_FALLBACK=0"]
        for jobs in outcome.jobs.values():
            for compiler, v in jobs:
                detail = ", ".join(v.evidence) if v.result == "PASS" else f"cause: {v.cause}"
                out.append(f"  {v.worker.ljust(width)}  {v.result}  {'' if compiler == NATIVE else compiler + ': '}{detail}")
        out += _paths(outcome)
    else:
        rows = []
        for name, jobs in outcome.jobs.items():
            results = dict(jobs)
            real_jobs = outcome.real.jobs.remote_ok.get(name, 0)
            rows.append((
                name, *(results[c].result if c in results else "-" for c in compilers),
                f"{real_jobs} jobs" if outcome.real.ran else "not run",
            ))
        title = f"smoke test (marker {outcome.marker}): one compile per worker and compiler, DISTCC_FALLBACK=0"
        out = ["", title, *narrow_table(("worker", *compilers, "real path"), rows), EVIDENCE_HINT]
        # One paragraph per compiler and cause: a cause many workers share
        # (the builder's compiler broken) is said once, naming them all.
        failed: dict[tuple[str, str], list[str]] = {}
        for jobs in outcome.jobs.values():
            for compiler, v in jobs:
                if v.result != "PASS":
                    failed.setdefault((compiler, v.cause), []).append(v.worker)
        out.append("")
        for (compiler, cause), names in failed.items():
            where = names[0] if len(names) == 1 else f"on {len(names)} workers ({', '.join(names)})"
            out += wrapped(f"FAIL {compiler} {where}: {cause}")
        out += [line for paragraph in _paths(outcome) for line in wrapped(paragraph)]
    passed = sum(1 for v in outcome.verdicts.values() if v.result == "PASS")
    out.append(f"smoke test: {passed} of {len(outcome.verdicts)} workers PASS")
    return "\n".join(out)


def report() -> None:
    run = _run()
    builder = builder_host(inventory)
    workers = worker_hosts(inventory)
    settings = settings_for(builder)
    outcome = smoke_outcome(
        run["marker"], peer_name(builder), [peer_name(w) for w in workers], _lines(run["outputs"].get(builder.name)),
        {peer_name(w): _lines(run["outputs"].get(w.name)) for w in workers}, settings.smoke_timeout,
        list(settings.cross_compilers),
    )
    for worker in workers:
        run["verdicts"][worker.name] = outcome.verdicts[peer_name(worker)]
    run["verdicts"][builder.name] = outcome.builder
    print(render_smoke(outcome, settings.wide_tables) + "\n", file=sys.stderr, flush=True)


def _pump_problem(pumped: RealPath) -> str | None:
    """Why the pump path failed (a job not preprocessed on a worker is the
    include server failing), or None."""
    jobs = pumped.jobs
    if pumped.rc != "0":
        return f"the build user's distcc-pump make exited {pumped.rc}"
    if not jobs.compile_jobs or jobs.pumped < jobs.compile_jobs:
        reasons = "; ".join(f"{n} {why}" for why, n in sorted(jobs.pump_fallback.items())) or "not sent to a pump host"
        return (
            f"in pump mode {jobs.pumped} of {jobs.compile_jobs} compile jobs were preprocessed on workers: the rest "
            f"were preprocessed on the builder ({reasons})"
        )
    return None


@operation(is_idempotent=False)
def smoke_verdict():
    """Fail this host's run when its smoke test FAILed (decided at execute time)."""
    verdict = _run()["verdicts"].get(host.name)
    if verdict is None:
        host.noop("no verdict for this host (not a worker, or decided at execution)")
        return
    if verdict.result != "PASS":
        what = "the real path" if role_of(host) == "builder" else ""
        said = f"smoke test FAILED on {verdict.worker}{' in ' + what if what else ''}: {verdict.cause}"
        yield StringCommand(*printf_wrapped(said), ">&2;", "exit 1")
        return
    host.noop(f"smoke test PASS on {verdict.worker}")


@deploy("cluster distcc smoketest")
def cluster_distcc_smoketest():
    check_inventory(inventory)
    settings = settings_for(host)
    run = _run()
    builder_settings = settings_for(builder_host(inventory))
    if role_of(host) == "builder":
        workers = [(peer_name(w), settings_for(w).port) for w in worker_hosts(inventory)]
        script = builder_script(
            run["marker"], builder_settings.tmpfs_path, workers, settings.smoke_timeout, list(settings.cross_compilers),
            settings.pump, settings.smoke_functions,
        )
        extra = {"_sudo_user": settings.build_user}
    else:
        # The builder compiles with each of its compilers in turn on this worker.
        jobs = len(compilers_tested(builder_settings.cross_compilers))
        script = worker_script(
            run["marker"], f"{settings.log_dir}/distccd.log", builder_settings.smoke_timeout * jobs + 10, jobs
        )
        extra = {}
    # One call site for every host, so the builder's compiles and the
    # workers' watching run at the same time.
    run["outputs"][host.name] = server.shell(
        name="Smoke test: compile on every worker, watch every worker",
        commands=[StringCommand("sh", "-c", QuoteString(script))],
        **extra,
    )
    python.call(name="Smoke test report", function=report, _run_once=True)
    smoke_verdict(name="Smoke test verdict")
