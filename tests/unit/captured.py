"""The captured lab outputs the unit tests share: validation's surveys
(surveys/CASE.json) evaluated as validation evaluates them, the smoke test's
script outputs (smoke/CASE.json), the build report's logs (report/) and fact
fixtures (facts/), and the sixteen-worker clusters made from them.

A cluster larger than the lab's is made only by renaming: each host of a
capture takes a new name (in its output and in what names it), and jobs
their new worker's index; no output is written here.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from pyinfra.api import Inventory

from deploys.library.validation.checks import evaluate_cluster
from deploys.library.validation.model import Check, Cluster
from deploys.library.validation.survey import NOT_CONNECTED
from facts.compiler import GccPackage
from facts.survey import parse_surveys

UNIT = Path(__file__).parent
SURVEYS = UNIT / "surveys"
BUILDER = "builder.distcc.internal"
WORKER1 = "worker1.distcc.internal"
WORKER2 = "worker2.distcc.internal"


def load(case: str) -> dict:
    """A captured survey case."""
    return json.loads((SURVEYS / f"{case}.json").read_text())


def evaluate_case(case: str) -> dict[str, list[Check]]:
    fixture = load(case)
    shape = fixture["inventory"]
    names = [(name, fixture["host_data"][name]) for name in shape["builder"] + shape["workers"]]
    inventory = Inventory((names, {}), builder=(shape["builder"], {}), workers=(shape["workers"], {}))
    surveys = parse_surveys(fixture["outputs"])
    unsurveyed = {n: NOT_CONNECTED for n, lines in fixture["outputs"].items() if lines is None}
    # Validation's second command, as read_gcc_packages puts it in.
    for name, lines in fixture.get("gcc_package", {}).items():
        surveys[name]["gcc_package"] = GccPackage().process(lines)
    return evaluate_cluster(Cluster.from_inventory(inventory, surveys, unsurveyed))


def roles_of(case: str) -> dict[str, str]:
    shape = load(case)["inventory"]
    return {**{name: "builder" for name in shape["builder"]}, **{name: "worker" for name in shape["workers"]}}


def smoke_case(case: str) -> dict:
    """A captured smoke test case: its marker, workers and every output line."""
    return json.loads((UNIT / "smoke" / f"{case}.json").read_text())


def report_log(name: str) -> list[str]:
    """A captured distcc log (report/README.md says what each is)."""
    return (UNIT / "report" / name).read_text().splitlines()


def fact_value(fact: str, case: str):
    """What a captured fact fixture (facts/FACT/CASE.json) parses to."""
    return json.loads((UNIT / "facts" / fact / f"{case}.json").read_text())["fact"]


def renamed(text: str, names: dict[str, str]) -> str:
    """text with each captured host name replaced by its new one: the full
    name (also inside a file name, backoff_tcp_NAME_3632), and a worker's
    first label alone (worker1: as H-NAMES says it; "builder" alone is a
    word of the text, never a name)."""
    for old, new in names.items():
        text = re.sub(rf"(?<![A-Za-z0-9.-]){re.escape(old)}(?![A-Za-z0-9-])", new, text)
        short, new_short = old.split(".")[0], new.split(".")[0]
        if any(c.isdigit() for c in short):
            text = re.sub(rf"(?<![\w.-]){re.escape(short)}(?![\w.-])", new_short, text)
    return text


# Sixteen workers, each with the checks one captured case gave its worker:
# healthy ones, and one broken way each, as a real farm half-way through a
# bad day looks. The builder's tmpfs is hidden under another mount.
SIXTEEN_WORKERS = [
    ("healthy", WORKER1), ("gcc-mismatch", WORKER1), ("distccd-stopped", WORKER1), ("open-insecure-wildcard", WORKER1),
    ("worker-distcc-removed", WORKER1), ("dns-worker", WORKER1), ("noroute-worker", WORKER1), ("firewall-drop", WORKER1),
    ("k3s-enabled", WORKER1), ("distccd-tmp-small", WORKER1), ("allow-wrong", WORKER1),
    ("hosts-loopback-builder", WORKER1), ("jobs-200", WORKER1), ("mtu-worker", WORKER1), ("healthy", WORKER2),
    ("worker-unreachable", WORKER2),
]


def sixteen_worker_cluster(
    worker_name=lambda i: f"worker{i}.distcc.internal", builder_name: str = BUILDER, in_details: bool = False,
) -> tuple[dict[str, list[Check]], dict[str, str]]:
    """Validation's results for SIXTEEN_WORKERS under the given names;
    with in_details, each detail names its hosts by their new names too."""
    def checks(case: str, host: str, name: str) -> list[Check]:
        names = {host: name, BUILDER: builder_name}
        return [replace(c, detail=renamed(c.detail, names)) if in_details else c for c in evaluate_case(case)[host]]

    results = {builder_name: checks("tmpfs-hidden", BUILDER, builder_name)}
    for i, (case, host) in enumerate(SIXTEEN_WORKERS, start=1):
        results[worker_name(i)] = checks(case, host, worker_name(i))
    roles = {name: "worker" for name in results} | {builder_name: "builder"}
    return results, roles


def paragraphs_joined(lines: list[str]) -> list[str]:
    """Wrapped output as its paragraphs: a line that starts with two spaces
    continues the one before it."""
    joined: list[str] = []
    for line in lines:
        if line.startswith("  ") and joined:
            joined[-1] += " " + line.strip()
        else:
            joined.append(line)
    return joined
