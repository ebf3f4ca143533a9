"""The pure parts of the benchmark (bench/run.py): the floor's probe, counting
remote commands in pyinfra's -vv output, medians, the targets of issue 14
and the markdown report.

Nothing here starts a process, talks to Docker or imports pyinfra, so
tests/unit/test_bench.py can check it on captured text.

How remote commands are counted
-------------------------------
pyinfra's SSH connector echoes every command it is about to run when the CLI
runs with -vv (state.print_input / print_fact_input):

    [worker1.distcc.internal] >>> sudo -H -n sh -c '...'

That echo sits in ConnectorSSH.run_shell_command, right before
client.exec_command, so there is exactly one such line per SSH exec channel,
for facts and for operation commands alike, and only the first line of a
multi-line command starts with "[host] >>> ". We count those lines per host.
SFTP transfers (files.put/template uploads) are not exec channels and are not
counted; their sudo cp/rm around the transfer are. -v (implied by -vv) also
prints "[host] Loaded fact NAME" after every fact, which gives the per-fact
breakdown. The counter is checked on a known case on every run: validation
gathers everything with ONE fact (facts/survey.py HostSurvey), so it must
count exactly one command per host (bench/run.py flags any other number);
and on the first repeat of each size bench/run.py compares the number of
sudo commands counted here with the sudo sessions each container's journal
recorded during the run (an independent, remote-side count).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
COMMAND_LINE = re.compile(r"^\s*\[(?P<host>[^\]\s]+)\]\s+(?:nested\s+)?>>> (?P<command>.*)$")
FACT_LINE = re.compile(r"^\s*\[(?P<host>[^\]\s]+)\]\s+(?:nested\s+)?Loaded fact (?P<fact>\S+)")
RUN_MARK = "--> Beginning operation run"

# Issue 14's floor: a minimal probe of what the seed checks on a node, one
# process or builtin per check, each allowed to fail without stopping the
# rest. The closing echo is a shell builtin (no process): it only shows that
# sh ran to the end, so a host counts as probed when ssh exits 0 and it
# printed PROBE_END.
PROBE_END = "##probe end"
PROBE = (
    "systemctl is-active distcc; "
    "test -f /etc/systemd/system/distcc.service.d/override.conf; "
    "test -L /usr/lib/distcc/gcc; "
    "gcc -dumpfullversion; "
    "gcc -dumpmachine; "
    "echo $PATH; "
    "ip -o link show eth0; "
    "hostname -f; "
    "ss -ltn 'sport = :3632'; "
    "DISTCC_HOSTS=localhost distcc --show-hosts; "
    f"echo '{PROBE_END}'"
)

# Row order and labels of the report.
DEPLOYS = {
    "connect_only": "(reference) 1 OpenSSH exec/host of `true`",
    "floor": "floor: 1 OpenSSH exec/host of the minimal probe",
    "survey_exec": "survey exec: 1 OpenSSH exec/host of validation's survey",
    "pyinfra_floor": "pyinfra floor: bench/pyinfra_floor.py, 1 fact/host: the probe",
    "validate": "cluster_distcc_validate.py",
    "mode_switch_noop": "mode_switch.py, no changes",
    "mode_switch_from_k3s": "mode_switch.py from k3s mode",
}
TIMED_DEPLOYS = ("pyinfra_floor", "validate", "mode_switch_noop", "mode_switch_from_k3s")

# Issue 14's limits, checked at every size measured.
VALIDATE_X_FLOOR = 1.5
NOOP_X_FLOOR = 3
NOOP_COMMANDS = 6


def median(values) -> float | None:
    """Median of the values that are not None; None when there are none."""
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def parse_pyinfra_log(text: str) -> dict:
    """Remote commands and facts per host from pyinfra -vv stderr.

    Returns {"commands": {host: n}, "sudo": {host: n}, "prepare": {host: n},
    "execute": {host: n}, "facts": {host: {fact: n}}}; "prepare" counts the
    commands before "--> Beginning operation run", "execute" those after."""
    commands: Counter = Counter()
    sudo: Counter = Counter()
    phases = {"prepare": Counter(), "execute": Counter()}
    facts: dict[str, Counter] = {}
    phase = "prepare"
    for raw in text.splitlines():
        line = ANSI.sub("", raw)
        if line.startswith(RUN_MARK):
            phase = "execute"
            continue
        match = COMMAND_LINE.match(line)
        if match:
            host = match["host"]
            commands[host] += 1
            phases[phase][host] += 1
            if match["command"].startswith("sudo "):
                sudo[host] += 1
            continue
        match = FACT_LINE.match(line)
        if match:
            facts.setdefault(match["host"], Counter())[match["fact"]] += 1
    return {
        "commands": dict(commands),
        "sudo": dict(sudo),
        "prepare": dict(phases["prepare"]),
        "execute": dict(phases["execute"]),
        "facts": {host: dict(counts) for host, counts in facts.items()},
    }


def summarize_counts(counts: dict[str, int], roles: dict[str, str]) -> dict:
    """Per-host command counts reduced to max, builder and worker figures.
    Every host in roles is included (a host that ran nothing counts 0)."""
    per_host = {host: counts.get(host, 0) for host in roles}
    workers = [n for host, n in per_host.items() if roles[host] == "worker"]
    builders = [n for host, n in per_host.items() if roles[host] == "builder"]
    return {
        "max": max(per_host.values()) if per_host else 0,
        "builder": builders[0] if builders else None,
        "worker_max": max(workers) if workers else None,
        "worker_min": min(workers) if workers else None,
        "total": sum(per_host.values()),
    }


def summarize_samples(samples: list[dict]) -> dict:
    """Medians of one deploy's samples at one size."""
    def pick(key, sub=None):
        return median([(s.get(key) or {}).get(sub) if sub else s.get(key) for s in samples])

    return {
        "n": len(samples),
        "wall_s": pick("wall_s"),
        "x_floor": pick("x_floor"),
        "commands_max": pick("command_summary", "max"),
        # The worst run: a target on commands holds for every run, not the median one.
        "commands_max_worst": max(
            ((s.get("command_summary") or {}).get("max") for s in samples
             if (s.get("command_summary") or {}).get("max") is not None),
            default=None,
        ),
        "commands_builder": pick("command_summary", "builder"),
        "commands_worker_max": pick("command_summary", "worker_max"),
        "peak_mib": median([s["peak_kib"] / 1024 if s.get("peak_kib") else None for s in samples]),
        "cpu_s": pick("cpu_s"),
        "failed": sum(1 for s in samples if not s.get("ok", True)),
    }


def _num(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if float(value).is_integer() and digits == 0:
        return str(int(value))
    return f"{value:.{digits}f}"


def _commands_cell(summary: dict) -> str:
    if summary.get("commands_max") is None:
        return "-"
    text = _num(summary["commands_max"], 0 if float(summary["commands_max"]).is_integer() else 1)
    builder, worker = summary.get("commands_builder"), summary.get("commands_worker_max")
    if builder is not None and worker is not None:
        text += f" (b {_num(builder, 0 if float(builder).is_integer() else 1)}"
        text += f" / w {_num(worker, 0 if float(worker).is_integer() else 1)})"
    return text


def render_size_table(size: int, medians: dict[str, dict]) -> list[str]:
    """One markdown table: a row per deploy at one lab size."""
    lines = [
        f"### {size} worker{'s' if size != 1 else ''} ({size + 1} hosts)",
        "",
        "| deploy | wall s | x floor | commands/host max (builder / worker) | peak MiB | pyinfra CPU s | runs |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for key, label in DEPLOYS.items():
        summary = medians.get(key)
        if not summary:
            continue
        x_floor = {"floor": "1.00"}.get(key) or _num(summary.get("x_floor"))
        runs = str(summary.get("n", "-"))
        if summary.get("failed"):
            runs += f" ({summary['failed']} failed)"
        lines.append(
            f"| {label} | {_num(summary.get('wall_s'))} | {x_floor} | {_commands_cell(summary)} | "
            f"{_num(summary.get('peak_mib'), 1)} | {_num(summary.get('cpu_s'))} | {runs} |"
        )
    lines.append("")
    return lines


def _workers(n: int) -> str:
    return f"{n} worker" if n == 1 else f"{n} workers"


def _verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


def survey_scope(arguments: dict, role: str) -> dict:
    """What one host's survey asks about, from its HostSurvey arguments: the
    names it resolves, and the peers it checks (a worker: its route to the
    builder; the builder: every worker it reaches)."""
    if role == "builder":
        peers = len(arguments.get("workers") or [])
    else:
        peers = 1 if arguments.get("builder_peer") else 0
    return {"names": len(arguments.get("names") or []), "peers": peers}


def survey_work(rounds: list[dict], roles: dict[str, str]) -> dict:
    """Per-host survey work at one size: in each round, every host's survey
    exec seconds divided by the same host's probe seconds (both from the
    parallel execs, measured back to back); the slowest worker's ratio and
    the builder's, as medians over the rounds.

    rounds: [{"probe": {host: s}, "survey": {host: s}}, ...]."""
    worker_ratios, builder_ratios, worker_s, builder_s = [], [], [], []
    for one in rounds:
        probe, survey = one.get("probe") or {}, one.get("survey") or {}
        ratios = {
            h: survey[h] / probe[h]
            for h in roles
            if survey.get(h) is not None and probe.get(h)
        }
        workers = [h for h in ratios if roles[h] == "worker"]
        if workers:
            slowest = max(workers, key=lambda h: survey[h])
            worker_ratios.append(ratios[slowest])
            worker_s.append(survey[slowest])
        for h in ratios:
            if roles[h] == "builder":
                builder_ratios.append(ratios[h])
                builder_s.append(survey[h])
    return {
        "worker_max_survey_s": median(worker_s),
        "worker_max_x_probe": median(worker_ratios),
        "builder_survey_s": median(builder_s),
        "builder_x_probe": median(builder_ratios),
    }


def evaluate_targets(medians_by_size: dict[int, dict[str, dict]], scopes: dict[int, dict] | None = None) -> list[dict]:
    """Issue 14's targets at every size measured, each with met/missed and
    by how much; pyinfra's peak memory and the survey's per-host work are
    reported beside them.

    scopes: {size: {"worker_names": n, "worker_peers": n, "builder_names": n,
    "builder_peers": n, "worker_max_x_probe": r, "builder_x_probe": r, ...}}."""
    targets = []
    for size in sorted(medians_by_size):
        medians = medians_by_size[size]
        found = [
            _validate_target(size, medians),
            _pyinfra_floor_report(size, medians),
            _noop_target(size, medians),
            _peak_memory_report(size, medians),
            _survey_scope_target(size, (scopes or {}).get(size)),
        ]
        targets += [target for target in found if target is not None]
    return targets


def _validate_target(size: int, medians: dict[str, dict]) -> dict | None:
    x = (medians.get("validate") or {}).get("x_floor")
    if x is None:
        return None
    met = x <= VALIDATE_X_FLOOR
    return {
        "id": f"validate-floor-{size}",
        "size": size,
        "met": met,
        "value": {"x_floor": x},
        "limit": {"x_floor": VALIDATE_X_FLOOR},
        "text": (
            f"TARGET validation at {_workers(size)} <= {VALIDATE_X_FLOOR}x floor: {_verdict(met)} "
            f"({x:.2f}x floor: {_by(x, VALIDATE_X_FLOOR, 'x')})"
        ),
    }


def _pyinfra_floor_report(size: int, medians: dict[str, dict]) -> dict | None:
    pyinfra_floor = medians.get("pyinfra_floor") or {}
    floor_s = (medians.get("floor") or {}).get("wall_s")
    if pyinfra_floor.get("wall_s") is None or pyinfra_floor.get("x_floor") is None or not floor_s:
        return None
    # pyinfra's least cost beside validation's limit: when it is over,
    # no deploy run by pyinfra can meet that target at this size.
    wall, limit_s = pyinfra_floor["wall_s"], VALIDATE_X_FLOOR * floor_s
    margin = (
        f"pyinfra alone needs {wall - limit_s:.2f} s more than that" if wall > limit_s
        else f"{limit_s - wall:.2f} s above pyinfra alone"
    )
    return {
        "id": f"pyinfra-floor-{size}",
        "size": size,
        "met": None,
        "value": {"wall_s": wall, "x_floor": pyinfra_floor["x_floor"], "validate_limit_s": limit_s},
        "text": (
            f"REPORT pyinfra floor at {_workers(size)}: {wall:.2f} s = {pyinfra_floor['x_floor']:.2f}x floor; "
            f"the {VALIDATE_X_FLOOR}x validation limit is {limit_s:.2f} s ({margin})"
        ),
    }


def _noop_target(size: int, medians: dict[str, dict]) -> dict | None:
    noop = medians.get("mode_switch_noop") or {}
    x = noop.get("x_floor")
    cmds = noop.get("commands_max_worst", noop.get("commands_max"))
    if x is None or cmds is None:
        return None
    met_x, met_c = x <= NOOP_X_FLOOR, cmds <= NOOP_COMMANDS
    return {
        "id": f"mode-switch-noop-{size}",
        "size": size,
        "met": met_x and met_c,
        "value": {"x_floor": x, "commands_per_host": cmds},
        "limit": {"x_floor": NOOP_X_FLOOR, "commands_per_host": NOOP_COMMANDS},
        "text": (
            f"TARGET mode switch with no changes at {_workers(size)} <= {NOOP_COMMANDS} remote commands/host "
            f"and <= {NOOP_X_FLOOR}x floor: {_verdict(met_x and met_c)} "
            f"({_num(cmds, 0)} commands/host at most: {_by(cmds, NOOP_COMMANDS, '')}; "
            f"{x:.2f}x floor: {_by(x, NOOP_X_FLOOR, 'x')})"
        ),
    }


def _peak_memory_report(size: int, medians: dict[str, dict]) -> dict | None:
    peaks = {key: (medians.get(key) or {}).get("peak_mib") for key in TIMED_DEPLOYS}
    if all(v is None for v in peaks.values()):
        return None
    return {
        "id": f"peak-memory-{size}",
        "size": size,
        "met": None,
        "value": {"peak_mib": peaks},
        "text": f"REPORT pyinfra peak memory at {_workers(size)}: " + "; ".join(
            f"{DEPLOYS[key]} {_num(v, 1)} MiB" for key, v in peaks.items()
        ),
    }


def _survey_scope_target(size: int, scope: dict | None) -> dict | None:
    if not scope:
        return None
    met = (scope.get("worker_names"), scope.get("worker_peers"), scope.get("builder_names"),
           scope.get("builder_peers")) == (1, 1, size, size)
    return {
        "id": f"survey-scope-{size}",
        "size": size,
        "met": met,
        "value": dict(scope),
        "limit": {"worker_names": 1, "worker_peers": 1, "builder_names": size, "builder_peers": size},
        "text": (
            f"TARGET survey work at {_workers(size)}: a worker's does not grow with the cluster, the "
            f"builder's grows linearly: {_verdict(met)} (names/peers asked: every worker at most "
            f"{_num(scope.get('worker_names'), 0)}/{_num(scope.get('worker_peers'), 0)}, the builder "
            f"{_num(scope.get('builder_names'), 0)}/{_num(scope.get('builder_peers'), 0)}; survey exec / the "
            f"same host's probe: slowest worker {_num(scope.get('worker_max_x_probe'))}x "
            f"({_num(scope.get('worker_max_survey_s'))} s), builder {_num(scope.get('builder_x_probe'))}x "
            f"({_num(scope.get('builder_survey_s'))} s))"
        ),
    }


def _by(value: float, limit: float, unit: str, strict: bool = False) -> str:
    """'0.30x under the limit' / '1.20x (40%) over the limit'."""
    met = value < limit if strict else value <= limit
    diff = abs(value - limit)
    amount = f"{diff:.2f}{unit}" if unit else _num(diff, 0 if float(diff).is_integer() else 1)
    if met:
        return f"{amount} under the limit of {_num(limit, 0 if float(limit).is_integer() else 2)}{unit}"
    pct = 100 * diff / limit if limit else 0
    return f"{amount} ({pct:.0f}%) over the limit of {_num(limit, 0 if float(limit).is_integer() else 2)}{unit}"


def fact_breakdown(sample: dict, roles: dict[str, str]) -> dict[str, dict[str, int]]:
    """Facts loaded per role (builder, and the busiest worker) in one sample."""
    facts = sample.get("facts") or {}
    counts = sample.get("commands") or {}
    out: dict[str, dict[str, int]] = {}
    builders = [h for h, r in roles.items() if r == "builder"]
    workers = sorted((h for h, r in roles.items() if r == "worker"), key=lambda h: -counts.get(h, 0))
    for label, hosts in (("builder", builders[:1]), ("worker", workers[:1])):
        if hosts:
            out[f"{label} {hosts[0]}"] = dict(sorted(facts.get(hosts[0], {}).items(), key=lambda kv: (-kv[1], kv[0])))
    return out


def render_markdown(results: dict) -> str:
    """bench/results.md: machine, a table per size, the targets, the command
    breakdown of the mode switch with no changes, and anomalies."""
    lines = _header_lines(results)
    medians = {int(size): block["medians"] for size, block in results.get("sizes", {}).items()}
    for size in sorted(medians):
        lines += render_size_table(size, medians[size])
    lines.append("## Targets")
    lines.append("")
    for target in results.get("targets", []):
        lines.append(f"- {target['text']}")
    lines.append("")
    scopes = {int(size): scope for size, scope in (results.get("scopes") or {}).items()}
    if scopes:
        lines += _survey_work_lines(scopes)
    breakdown = results.get("breakdown")
    if breakdown:
        lines += _breakdown_lines(breakdown)
    checks = results.get("counter_checks")
    if checks:
        lines += _counter_check_lines(checks)
    anomalies = results.get("anomalies", [])
    lines.append("## Anomalies")
    lines.append("")
    lines += [f"- {a}" for a in anomalies] or ["- none: every run exited 0, validation counted 1 command per host, "
                                               "every no-change mode switch changed nothing"]
    lines.append("")
    return "\n".join(lines)


def _header_lines(results: dict) -> list[str]:
    """The title, the machine, the code measured and how to read the figures."""
    machine = results.get("machine", {})
    config = results.get("config", {})
    arch = config.get("arch") or "amd64"
    return [
        f"# Benchmark: DISTCC BUILD MODE deploys on the Docker lab ({arch})",
        "",
        f"Date {machine.get('date', '?')}; {machine.get('cpu_model', '?')}, {machine.get('nproc', '?')} CPUs, "
        f"{machine.get('memory_mib', '?')} MiB, kernel {machine.get('kernel', '?')}, Docker {machine.get('docker', '?')}, "
        f"pyinfra {machine.get('pyinfra', '?')}. Load average at start {machine.get('loadavg_start', '?')}, "
        f"at end {machine.get('loadavg_end', '?')}.",
        "",
        f"Code: HEAD {results.get('code', {}).get('head', '?')[:12]} with uncommitted changes in "
        f"{len(results.get('code', {}).get('uncommitted', []))} files (digest {results.get('code', {}).get('digest', '?')}).",
        "",
        f"Lab {config.get('lab_prefix', '?')} ({config.get('lab_subnet', '?')}), nodes {arch}, sizes "
        f"{config.get('sizes', '?')}, every figure the median of {config.get('repeat', '?')} runs. The floor: one "
        "OpenSSH exec per host, all hosts at once, as pi with sudo, of issue 14's minimal probe (`" + PROBE + "`); "
        "wall from the first ssh start to the last exit. x floor: each run's wall time divided by the floor "
        "measured just before it. The survey exec is the same kind of exec running validation's own survey "
        "command. The pyinfra floor is pyinfra itself, run as the deploys are, reading one fact per host whose "
        "command is the probe, with sudo, and nothing else: the least any pyinfra deploy costs at that size. "
        "Commands: SSH exec channels per host counted from pyinfra -vv (max over hosts; b = builder, "
        "w = busiest worker). Peak MiB and CPU s: max RSS and user+system CPU seconds of the pyinfra process "
        "(/usr/bin/time %M %U %S).",
        "",
    ]


def _survey_work_lines(scopes: dict[int, dict]) -> list[str]:
    lines = [
        "## Survey work per host",
        "",
        "Names each survey resolves and peers it checks (from validation's own survey arguments), and each "
        "survey exec's seconds divided by the same host's probe seconds in the same round (medians):",
        "",
        "| workers | worker names / peers | builder names / peers | slowest worker: survey s (x its probe) "
        "| builder: survey s (x its probe) |",
        "|---:|---|---|---|---|",
    ]
    for size in sorted(scopes):
        s = scopes[size]
        lines.append(
            f"| {size} | {_num(s.get('worker_names'), 0)} / {_num(s.get('worker_peers'), 0)} | "
            f"{_num(s.get('builder_names'), 0)} / {_num(s.get('builder_peers'), 0)} | "
            f"{_num(s.get('worker_max_survey_s'))} ({_num(s.get('worker_max_x_probe'))}x) | "
            f"{_num(s.get('builder_survey_s'))} ({_num(s.get('builder_x_probe'))}x) |"
        )
    lines.append("")
    return lines


def _breakdown_lines(breakdown: dict) -> list[str]:
    """What the mode switch with no changes sends, and where the floor ends."""
    lines = [f"## Remote commands of mode_switch.py with no changes at {_workers(breakdown['size'])}", ""]
    lines.append(
        f"Per host: {breakdown['prepare']} during prepare and {breakdown['execute']} during execute "
        "(builder / busiest worker). Facts loaded (a fact read alone is one round trip; facts.bundle.FactBundle "
        "reads a phase's facts in one):"
    )
    lines.append("")
    for who, facts in breakdown["facts"].items():
        total = sum(facts.values())
        lines.append(f"- {who}: {total} facts: " + ", ".join(f"{name} x{n}" for name, n in facts.items()))
    lines.append("")
    if breakdown.get("floor_builder_s") is not None:
        lines.append(
            f"The floor at {_workers(breakdown['size'])} ends with the slowest probe: the builder's took "
            f"{_num(breakdown['floor_builder_s'])} s, the slowest worker's {_num(breakdown.get('floor_worker_max_s'))} s "
            "(medians, from starting all ssh clients)."
        )
        lines.append("")
    return lines


def _counter_check_lines(checks: list[str]) -> list[str]:
    return [
        "## Command counter check",
        "",
        "First run of each size: sudo commands counted from pyinfra -vv against the sudo sessions each "
        "container's journal recorded during the run (hosts that agree / hosts):",
        "",
        *[f"- {c}" for c in checks],
        "",
    ]
