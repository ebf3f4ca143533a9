"""A real distributed compile on every worker, proven from both ends.

distcc fails quietly: a job it cannot send is compiled on the builder with
exit 0. So the builder compiles a source file carrying a unique marker once
per worker, with DISTCC_HOSTS set to that worker alone, DISTCC_FALLBACK=0 and
a timeout (distcc 3.4 can retry forever), while each worker watches its own
cc1 processes and distccd log. A worker PASSes only when:
- the client's verbose log says the job compiled on that worker;
- that worker's distccd log has COMPILE_OK for this very file, from the
  builder's address;
- the object's .comment and ELF header equal those of the builder's own gcc;
- the program linked from it runs on the builder and prints the marker;
- a cc1 run by distccd was seen on the worker.
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

from deploys.library.cluster import builder_host, check_inventory, peer_name, role_of, worker_hosts
from deploys.library.report import NOT_DISTRIBUTABLE, ClientJobs, parse_client_log
from deploys.library.settings import settings_for

# Enough functions that cc1 runs long enough (a fraction of a second on a PC,
# seconds on a CM3+) for the worker to see it in ps.
FUNCTIONS = 400
# The real-path project: this many files per slot of the host list, so that
# every slot gets work while make keeps `distcc -j` jobs in flight.
FILES_PER_SLOT = 2
# The real-path build is several compiles one after another per slot.
REAL_PATH_TIMEOUTS = 4


@dataclass
class Verdict:
    worker: str
    result: str
    evidence: list[str]
    cause: str


_runs: dict[int, dict] = {}


def _run() -> dict:
    return _runs.setdefault(id(state), {"marker": uuid.uuid4().hex[:12], "outputs": {}, "verdicts": {}})


def builder_script(marker: str, tmpfs_path: str, workers: list[tuple[str, int]], timeout: int = 60) -> str:
    """The builder's side, one compile per worker in parallel; every output
    line is `K key value` for the worker with index K."""
    lines = [
        "set -u",
        f"d=$(mktemp -d {tmpfs_path}/.distcc-smoke.XXXXXX) || {{ echo 'setup cannot create a directory under {tmpfs_path}'; exit 0; }}",
        "trap 'rm -rf \"$d\"' EXIT INT TERM",
        'cd "$d"',
        "{ echo '#include <stdio.h>';",
        f"  i=0; while [ $i -lt {FUNCTIONS} ]; do",
        '    echo "int f$i(int x) { int s = x; for (int j = 0; j < x; j++) s = s * 31 + j % 7 + $i; return s; }";',
        "    i=$((i + 1)); done;",
        f"  echo 'int main(void) {{ puts(\"distcc smoke {marker}\"); return 0; }}'; }} > base.c",
        "echo 'int ref;' > ref.c && gcc -c ref.c -o ref.o",
        "ref_comment=$(readelf -p .comment ref.o 2>/dev/null | sed -n 's/.*\\] *//p' | head -n 1)",
        "ref_elf=$(readelf -h ref.o | awk -F: '/Class|Machine/ {gsub(/^ +/, \"\", $2); printf \"%s/\", $2}')",
    ]
    for index, (name, port) in enumerate(workers):
        source = f"smoke-{marker}-{index}.c"
        lines += [
            "(",
            f"  cp base.c {source}; mkdir -p state-{index}",
            f"  a=$(getent ahostsv4 {name} | awk 'NR == 1 {{print $1}}')",
            f"  echo \"{index} source $(ip -o route get \"$a\" 2>/dev/null | sed -n 's/.* src \\([^ ]*\\).*/\\1/p')\"",
            f"  DISTCC_HOSTS={name}:{port}/1 DISTCC_FALLBACK=0 DISTCC_VERBOSE=1 DISTCC_LOG=$d/client-{index}.log "
            f"DISTCC_DIR=$d/state-{index} timeout {timeout} distcc gcc -O2 -c {source} -o obj-{index}.o "
            f">/dev/null 2>&1; echo \"{index} rc $?\"",
            f"  grep -E 'compiled on|completed ok|ERROR|failed|Warning|refused|timeout' client-{index}.log 2>/dev/null "
            f"| sed 's/^distcc\\[[0-9]*\\] //' | sed 's/^/{index} client /'",
            f"  if [ -f obj-{index}.o ]; then",
            f"    c=$(readelf -p .comment obj-{index}.o 2>/dev/null | sed -n 's/.*\\] *//p' | head -n 1)",
            f"    e=$(readelf -h obj-{index}.o | awk -F: '/Class|Machine/ {{gsub(/^ +/, \"\", $2); printf \"%s/\", $2}}')",
            f"    [ \"$c\" = \"$ref_comment\" ] && echo \"{index} comment same $c\"",
            f"    [ \"$c\" = \"$ref_comment\" ] || echo \"{index} comment differs $c (builder: $ref_comment)\"",
            f"    [ \"$e\" = \"$ref_elf\" ] && echo \"{index} elf same $e\" || echo \"{index} elf differs $e (builder: $ref_elf)\"",
            f"    gcc obj-{index}.o -o prog-{index} && echo \"{index} run $(./prog-{index})\"",
            "  fi",
            ") &",
        ]
    lines.append("wait")
    lines += real_path_script(timeout)
    return "\n".join(lines)


def real_path_script(timeout: int) -> list[str]:
    """As the build user in a login shell: make -j through the masquerade.
    Output lines: `R rc N`, `R slots N`, `R files N` and `R log LINE`."""
    inner = "; ".join([
        "cd \"$1\"",
        "command -v make >/dev/null 2>&1 || { echo 'R nomake'; exit 0; }",
        "slots=$(distcc -j 2>/dev/null || echo 0)",
        "echo \"R slots $slots\"",
        f"n=$((slots * {FILES_PER_SLOT})); [ $n -gt 0 ] || n=1; echo \"R files $n\"",
        "i=0; objs=; while [ $i -lt $n ]; do sed \"s/^int f/int u${i}_f/; s/int main(void)/int main_$i(void)/\" ../base.c"
        " > u$i.c; objs=\"$objs u$i.o\"; i=$((i + 1)); done",
        "printf 'all:%s\\n%%.o: %%.c\\n\\tcc -O2 -c $< -o $@\\n' \"$objs\" > Makefile",
        "DISTCC_LOG=\"$PWD/client.log\"; export DISTCC_LOG",
        f"timeout {timeout * REAL_PATH_TIMEOUTS} make -j$slots >make.out 2>&1; echo \"R rc $?\"",
        "sed 's/^/R log /' client.log 2>/dev/null",
    ])
    return [
        'mkdir -p "$d/real"',
        f"sh -l -c {_sh_quote(inner)} real-path \"$d/real\"",
    ]


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@dataclass
class RealPath:
    rc: str
    slots: str
    files: str
    jobs: ClientJobs
    ran: bool = True

    def local_distributable(self) -> int:
        return sum(n for reason, n in self.jobs.local.items() if reason != NOT_DISTRIBUTABLE)


def real_path_result(builder_lines: list[str]) -> RealPath:
    facts = {}
    log = []
    for line in builder_lines:
        if line == "R nomake":
            return RealPath("-", "-", "-", parse_client_log([]), ran=False)
        if not line.startswith("R "):
            continue
        key, _, value = line[2:].partition(" ")
        if key == "log":
            log.append(value)
        else:
            facts[key] = value
    return RealPath(facts.get("rc", "?"), facts.get("slots", "?"), facts.get("files", "?"), parse_client_log(log))


def worker_script(marker: str, log_file: str, seconds: int) -> str:
    """The worker's side: until its job is logged (or `seconds` have passed,
    by the clock: each round costs far more than its 0.1 s sleep on a slow
    or emulated node), watch for a cc1 run by distccd; then print the log
    lines written meanwhile."""
    return "\n".join(
        [
            f"log={log_file}",
            'start=$(stat -c %s "$log" 2>/dev/null || echo 0)',
            f"seen=no; end=$(($(date +%s) + {int(seconds)}))",
            'while [ "$(date +%s)" -lt "$end" ]; do',
            "  ps -eo user=,comm= | grep -qE '^distccd +cc1(plus)?$' && seen=yes",
            '  new=$(tail -c +$((start + 1)) "$log" 2>/dev/null)',
            f"  printf '%s\\n' \"$new\" | grep -qE 'job_summary.*{marker}|denied by access list|whitelist|No space left' && break",
            "  sleep 0.1",
            "done",
            "sleep 0.3",
            "echo \"cc1 $seen\"",
            'tail -c +$((start + 1)) "$log" 2>/dev/null | LC_ALL=C tr -cd \'\\11\\12\\40-\\176\' | sed \'s/^/log /\'',
        ]
    )


_CAUSES = [
    (re.compile(r"not in .*whitelist"), "the compiler is not in the worker's /usr/lib/distcc whitelist"),
    (re.compile(r"denied by access list"), "the builder is denied by the worker's access list (--allow)"),
    (re.compile(r"No space left"), "no space left on the worker for the job's temporary files"),
    (re.compile(r"COMPILE_ERROR"), "the compiler failed on the worker"),
    (re.compile(r"COMPILE_TIMEOUT"), "the job timed out on the worker"),
]


def judge(
    worker: str, index: int, marker: str, builder_lines: list[str], worker_lines: list[str], timeout: int = 60
) -> Verdict:
    mine = [line.split(" ", 1)[1] for line in builder_lines if line.startswith(f"{index} ")]
    facts = {}
    client = []
    for line in mine:
        key, _, value = line.partition(" ")
        if key == "client":
            client.append(value)
        else:
            facts[key] = value
    logs = [line[4:] for line in worker_lines if line.startswith("log ")]
    source = f"smoke-{marker}-{index}.c"
    builder_address = facts.get("source", "?")
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
        evidence.append(".comment = builder's gcc")
    else:
        problems.append(f".comment {facts.get('comment', 'missing (no object)')}")
    if facts.get("elf", "").startswith("same"):
        evidence.append("ELF = builder's")
    else:
        problems.append(f"ELF {facts.get('elf', 'missing (no object)')}")
    if facts.get("run") == f"distcc smoke {marker}":
        evidence.append("program ran")
    else:
        problems.append(f"program output {facts.get('run', 'none')!r}")
    if "cc1 yes" in worker_lines:
        evidence.append("cc1 seen on worker")
    else:
        problems.append("no cc1 seen on the worker")

    if not problems:
        return Verdict(worker, "PASS", evidence, "")
    cause = next((why for pattern, why in _CAUSES if any(pattern.search(line) for line in logs)), None)
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


def _lines(meta) -> list[str]:
    try:
        return [line.strip() for line in meta.stdout_lines]
    except Exception:  # the op did not run on that host (failed or skipped)
        return []


def report() -> None:
    run = _run()
    builder = builder_host(inventory)
    workers = worker_hosts(inventory)
    builder_lines = _lines(run["outputs"].get(builder.name))
    setup = [line for line in builder_lines if line.startswith("setup ")]
    real = real_path_result(builder_lines)
    rows = []
    for index, worker in enumerate(workers):
        name = peer_name(worker)
        if setup:
            verdict = Verdict(name, "FAIL", [], setup[0][6:])
        else:
            verdict = judge(
                name, index, run["marker"], builder_lines, _lines(run["outputs"].get(worker.name)),
                settings_for(builder).smoke_timeout,
            )
            jobs = real.jobs.remote_ok.get(name, 0)
            if not real.ran:
                pass
            elif jobs:
                verdict.evidence.append(f"real path: {jobs} jobs")
            elif verdict.result == "PASS":
                verdict = Verdict(name, "FAIL", verdict.evidence,
                                  "no job of the build user's make -j reached this worker (see the real-path line)")
        run["verdicts"][worker.name] = verdict
        rows.append(verdict)
    local = real.local_distributable()
    why = "; ".join(f"{n} {text}" for text, n in sorted(real.jobs.local_detail.items())
                    if not text.startswith(NOT_DISTRIBUTABLE)) or "none"
    builder_ok = not real.ran or (not setup and real.rc == "0" and local == 0 and real.jobs.remote_total > 0)
    run["verdicts"][builder.name] = Verdict(
        peer_name(builder), "PASS" if builder_ok else "FAIL", [],
        "" if builder_ok else f"the build user's make -j exited {real.rc}, {local} distributable files compiled "
        f"on the builder ({why})",
    )
    width = max(len(v.worker) for v in rows)
    out = ["", f"smoke test (marker {run['marker']}): one compile per worker, DISTCC_FALLBACK=0"]
    for v in rows:
        detail = ", ".join(v.evidence) if v.result == "PASS" else f"cause: {v.cause}"
        out.append(f"  {v.worker.ljust(width)}  {v.result}  {detail}")
    if not real.ran:
        out.append("real path: not run, make is not installed on the builder (a build needs it: apt install make)")
    else:
        out.append(
            f"real path (build user, login shell, make -j{real.slots}, {real.files} files): "
            f"{real.jobs.remote_total} of {real.jobs.compile_jobs} compile jobs on workers, {local} distributable "
            f"compiled locally (fallback {why}), make exit {real.rc}: {run['verdicts'][builder.name].result}"
        )
    passed = sum(1 for v in rows if v.result == "PASS")
    out.append(f"smoke test: {passed} of {len(rows)} workers PASS")
    print("\n".join(out) + "\n", file=sys.stderr, flush=True)


@operation(is_idempotent=False)
def smoke_verdict():
    """Fail this host's run when its smoke test FAILed (decided at execute time)."""
    verdict = _run()["verdicts"].get(host.name)
    if verdict is None:
        host.noop("no verdict for this host (not a worker, or decided at execution)")
        return
    if verdict.result != "PASS":
        what = "the real path" if role_of(host) == "builder" else ""
        yield StringCommand(
            "echo", QuoteString(f"smoke test FAILED on {verdict.worker}{' in ' + what if what else ''}: {verdict.cause}"),
            ">&2;", "exit 1",
        )
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
        script = builder_script(run["marker"], builder_settings.tmpfs_path, workers, settings.smoke_timeout)
        extra = {"_sudo_user": settings.build_user}
    else:
        script = worker_script(run["marker"], f"{settings.log_dir}/distccd.log", builder_settings.smoke_timeout + 10)
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
