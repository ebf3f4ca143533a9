"""The pure parts of the benchmark (bench/run.py): counting remote commands in
pyinfra's -vv output, medians, the targets and the markdown report.

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

# Row order and labels of the report.
DEPLOYS = {
    "connect_only": "(reference) 1 OpenSSH exec/host of `true`",
    "floor": "floor: 1 OpenSSH exec/host (survey)",
    "validate": "cluster_distcc_validate.py",
    "mode_switch_noop": "mode_switch.py, no changes",
    "mode_switch_from_k3s": "mode_switch.py from k3s mode",
}
TIMED_DEPLOYS = ("validate", "mode_switch_noop", "mode_switch_from_k3s")


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
        x_floor = {"floor": "1.00", "connect_only": "-"}.get(key) or _num(summary.get("x_floor"))
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


def evaluate_targets(medians_by_size: dict[int, dict[str, dict]], target_size: int = 16) -> list[dict]:
    """The three targets, each with met/missed and by how much.

    The per-size targets are read at the largest size measured (16 by
    default); the growth target compares the smallest and largest sizes."""
    if not medians_by_size:
        return []
    sizes = sorted(medians_by_size)
    big, small = sizes[-1], sizes[0]
    note = "" if big == target_size else f" [measured at {big}, the target is stated for {target_size}]"
    targets = []

    validate = medians_by_size[big].get("validate", {})
    x, cmds = validate.get("x_floor"), validate.get("commands_max")
    if x is not None and cmds is not None:
        met_x, met_c = x <= 1.5, cmds <= 3
        targets.append({
            "id": "validate-floor-commands",
            "met": met_x and met_c,
            "value": {"x_floor": x, "commands_per_host": cmds},
            "limit": {"x_floor": 1.5, "commands_per_host": 3},
            "text": (
                f"TARGET validation at {big} workers <= 1.5x floor and <= 3 remote commands/host: "
                f"{_verdict(met_x and met_c)} ({x:.2f}x floor: {_by(x, 1.5, 'x')}; "
                f"{_num(cmds, 0)} commands/host: {_by(cmds, 3, '')}){note}"
            ),
        })

    noop = medians_by_size[big].get("mode_switch_noop", {})
    x = noop.get("x_floor")
    if x is not None:
        targets.append({
            "id": "mode-switch-noop-floor",
            "met": x <= 3,
            "value": {"x_floor": x},
            "limit": {"x_floor": 3},
            "text": (
                f"TARGET mode switch with no changes at {big} workers <= 3x floor: {_verdict(x <= 3)} "
                f"({x:.2f}x floor: {_by(x, 3, 'x')}){note}"
            ),
        })

    if big != small:
        for key in TIMED_DEPLOYS:
            a = medians_by_size[small].get(key, {}).get("wall_s")
            b = medians_by_size[big].get(key, {}).get("wall_s")
            if not a or b is None:
                continue
            growth = b / a
            targets.append({
                "id": f"growth-{key}",
                "met": growth < 2,
                "value": {"growth": growth, "wall_small_s": a, "wall_big_s": b},
                "limit": {"growth": 2},
                "text": (
                    f"TARGET wall time from {small} to {big} workers grows < 2x, {DEPLOYS[key]}: "
                    f"{_verdict(growth < 2)} ({a:.2f} s -> {b:.2f} s = {growth:.2f}x: {_by(growth, 2, 'x', strict=True)})"
                ),
            })
    return targets


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
    machine = results.get("machine", {})
    config = results.get("config", {})
    lines = [
        "# Benchmark: DISTCC BUILD MODE deploys on the Docker lab",
        "",
        f"Date {machine.get('date', '?')}; {machine.get('cpu_model', '?')}, {machine.get('nproc', '?')} CPUs, "
        f"{machine.get('memory_mib', '?')} MiB, kernel {machine.get('kernel', '?')}, Docker {machine.get('docker', '?')}, "
        f"pyinfra {machine.get('pyinfra', '?')}. Load average at start {machine.get('loadavg_start', '?')}, "
        f"at end {machine.get('loadavg_end', '?')}.",
        "",
        f"Code: HEAD {results.get('code', {}).get('head', '?')[:12]} with uncommitted changes in "
        f"{len(results.get('code', {}).get('uncommitted', []))} files (digest {results.get('code', {}).get('digest', '?')}).",
        "",
        f"Lab {config.get('lab_prefix', '?')} ({config.get('lab_subnet', '?')}), sizes {config.get('sizes', '?')}, "
        f"every figure the median of {config.get('repeat', '?')} runs. x floor: each run's wall time divided by the "
        "floor measured just before it. Commands: SSH exec channels per host counted from pyinfra -vv "
        "(max over hosts; b = builder, w = busiest worker). Peak MiB and CPU s: max RSS and user+system CPU seconds "
        "of the pyinfra process (/usr/bin/time %M %U %S).",
        "",
    ]
    medians = {int(size): block["medians"] for size, block in results.get("sizes", {}).items()}
    for size in sorted(medians):
        lines += render_size_table(size, medians[size])
    lines.append("## Targets")
    lines.append("")
    for target in results.get("targets", []):
        lines.append(f"- {target['text']}")
    lines.append("")
    breakdown = results.get("breakdown")
    if breakdown:
        lines.append(f"## Remote commands of mode_switch.py with no changes at {_workers(breakdown['size'])}")
        lines.append("")
        lines.append(
            f"Per host: {breakdown['prepare']} during prepare and {breakdown['execute']} during execute "
            "(builder / busiest worker). Facts loaded (each fact is one round trip):"
        )
        lines.append("")
        for who, facts in breakdown["facts"].items():
            total = sum(facts.values())
            lines.append(f"- {who}: {total} facts: " + ", ".join(f"{name} x{n}" for name, n in facts.items()))
        lines.append("")
        if breakdown.get("floor_builder_s") is not None:
            lines.append(
                f"The floor at {_workers(breakdown['size'])} ends with the slowest survey: the builder's took "
                f"{_num(breakdown['floor_builder_s'])} s, the slowest worker's {_num(breakdown.get('floor_worker_max_s'))} s "
                "(medians, from starting all ssh clients)."
            )
            lines.append("")
    checks = results.get("counter_checks")
    if checks:
        lines.append("## Command counter check")
        lines.append("")
        lines.append(
            "First run of each size: sudo commands counted from pyinfra -vv against the sudo sessions each "
            "container's journal recorded during the run (hosts that agree / hosts):"
        )
        lines.append("")
        lines += [f"- {c}" for c in checks]
        lines.append("")
    anomalies = results.get("anomalies", [])
    lines.append("## Anomalies")
    lines.append("")
    lines += [f"- {a}" for a in anomalies] or ["- none: every run exited 0, validation counted 1 command per host, "
                                               "every no-change mode switch changed nothing"]
    lines.append("")
    return "\n".join(lines)
