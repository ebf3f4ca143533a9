"""What validation prints and writes: the narrow table (a line per host),
the wide one (hosts by checks, distcc_wide_tables), the problem lines and
counts, and the JSON report. Every word for a check's outcome is the one
the check gives (PASS, WARN, FAIL), in the table's header, its cells, the
problem lines and the counts alike.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from deploys.library.tables import narrow_table
from deploys.library.validation.checks import CHECKS, COLUMNS
from deploys.library.validation.model import FAIL, PASS, WARN, Check
from operations._printed import wrapped

WIDE_HINT = "full table, one column per check, and a line per problem: --data distcc_wide_tables=True"


def render_table(results: dict[str, list[Check]], roles: dict[str, str], wide: bool = False) -> str:
    """What validation prints, ASCII: by default one line per host (its role,
    how many checks gave PASS, WARN and FAIL, and its first problem), then a
    paragraph per non-PASS check with its cause and fix, every line within
    WIDTH columns at any cluster size; `wide` (distcc_wide_tables) gives the
    matrix of hosts by checks instead, and each problem on one line. Then
    the counts."""
    lines = _matrix(results) if wide else [*_host_lines(results, roles), WIDE_HINT]
    problems = [(n, c) for n, checks in results.items() for c in checks if c.result != PASS]
    if problems:
        lines.append("")
        for name, item in problems:
            problem = f"{item.result} {item.id} {name}: {item.detail}"
            lines += [problem] if wide else wrapped(problem)
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
    return narrow_table(("host", "role", PASS, WARN, FAIL, "first problem"), rows, right=(2, 3, 4))


def _matrix(results: dict[str, list[Check]]) -> list[str]:
    """Hosts by checks: PASS, WARN or FAIL, '.' where a check does not
    apply, and the legend of the columns."""
    ids = [c for c in CHECKS if any(ch.id == c for checks in results.values() for ch in checks)]
    widths = {c: max(len(COLUMNS[c]), 4) for c in ids}
    width = max(len(h) for h in results)
    header = "host".ljust(width) + " | " + " ".join(COLUMNS[c].ljust(widths[c]) for c in ids)
    lines = [header.rstrip(), "-" * len(header.rstrip())]
    for name, checks in results.items():
        by_id = {c.id: c for c in checks}
        row = " ".join((by_id[c].result if c in by_id else ".").ljust(widths[c]) for c in ids)
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
