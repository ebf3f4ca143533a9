"""Capture validation's survey from every lab node, healthy and broken, as
unit-test fixtures (tests/unit/surveys/CASE.json).

    python3 -m lab.capture_surveys [CASE ...]     # no CASE: every case
    .venv/bin/python -m lab.capture_surveys --list

Run from the repository root with the lab's LAB_PREFIX/LAB_SUBNET exported,
the lab up and in build mode. For each case: break one thing on one node
(as root through `docker exec`), send every node validation's own survey
command through pyinfra's own SSH connection (as pi with sudo, exactly as a
validation run does), save the raw output lines, then restore the node (its
own restore command, then deploys/mode_switch.py when the case says so).
The cases are lab/survey_cases.py's CASES.
Some cases are captured from a lab of their own (LAB_OF_CASES, LAB_SETTINGS):
the stock cases from a lab of LAB_FLAVOR=stock (as its first user, ada), the
armhf ones from an emulated armhf lab of one worker, the mixed-release ones
from a lab of bookworm and trixie nodes; every other case from the usual lab
(fqdn nodes of one release). Without CASE, every case of the running lab's kind.
The fixture holds what the unit tests need and nothing invented: the
inventory's shape, each host's distcc_* data with ssh_user and _sudo (group
data included), each node's survey arguments and the sha256 of the command
sent (so a stale fixture is detected), and the lines; where validation
would send a second command (H-GCC's package names, gcc_package_reads), its
lines too, under "gcc_package".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a file too (the capture's child process): the package is found from the repository root.
sys.path.insert(0, str(REPO))

from lab.survey_cases import CASES, LAB_OF_CASES, LAB_SETTINGS, MODE_SWITCH, PREPARE  # noqa: E402

OUT = REPO / "tests" / "unit" / "surveys"
INVENTORY = "inventories/lab.py"
START_LIMIT_INTERVAL = 10


def lab_kind(nodes: list) -> str:
    """Which kind of lab these running nodes make (LAB_SETTINGS)."""
    if any(n.flavor == "stock" for n in nodes):
        return "stock"
    if all(n.arch == "armhf" for n in nodes):
        return "armhf"
    if len({n.suite for n in nodes}) > 1:
        return "mixed-release"
    return "usual"


def lab_description(nodes: list) -> str:
    """The lab a fixture was captured from: its prefix and each node's release and architecture."""
    from lab.docker_lab import PREFIX

    kinds = {(n.suite, n.arch, n.flavor) for n in nodes}
    if len(kinds) == 1:
        suite, arch, flavor = kinds.pop()
        return f"lab {PREFIX} ({suite}, {arch}{', ' + flavor if flavor != 'fqdn' else ''})"
    return f"lab {PREFIX} ({', '.join(f'{n.name} {n.suite} {n.arch}' for n in nodes)})"


def _lab_nodes() -> dict[str, object]:
    sys.path.insert(0, str(REPO))
    from lab.docker_lab import nodes

    running = [n for n in nodes() if n.state == "running"]
    workers = sorted((n for n in running if n.role == "worker"), key=lambda n: n.fqdn)
    builder = [n for n in running if n.role == "builder"][0]
    by_role = {"builder": builder, "kind": lab_kind(running), "about": lab_description([builder, *workers])}
    by_role["worker"], by_role["worker2"] = workers[0], (workers[1] if len(workers) > 1 else None)
    return by_role


def docker_sh(container: str, script: str) -> None:
    proc = subprocess.run(["docker", "exec", "-i", container, "sh", "-c", script], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"{container}: {script} failed: {proc.stderr}")


def capture(data: dict) -> dict:
    """Every node's survey, through pyinfra (in a child: pyinfra_cli patches gevent in)."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(data)], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise SystemExit(f"capture failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child(data: dict) -> None:
    sys.path.insert(0, str(REPO))
    from pyinfra.api import Config, State, StringCommand
    from pyinfra.api.connect import connect_all
    from pyinfra.context import ctx_config, ctx_host, ctx_inventory, ctx_state

    from deploys.library.cluster import builder_host, worker_hosts
    from deploys.library.settings import settings_for
    from deploys.library.validation.checks.host import gcc_package_reads
    from deploys.library.validation.survey import survey_arguments
    from facts.compiler import GccPackage
    from facts.survey import HostSurvey, parse_surveys
    from lab.capture_fact import command_sha256
    from operations._pyinfra import load_inventory, run_as_facts_run

    state = State(check_for_changes=False)
    state.cwd = str(REPO)
    ctx_state.set(state)
    inventory = load_inventory(INVENTORY, cwd=str(REPO), override_data=data)
    ctx_inventory.set(inventory)
    state.init(inventory, Config())
    connect_all(state)
    result: dict = {
        "inventory": {"builder": [builder_host(inventory).name], "workers": [w.name for w in worker_hosts(inventory)]},
        "arguments": {}, "command_sha256": {}, "outputs": {}, "host_data": {},
    }

    def run(node, command, what: str) -> list[str]:
        """command on node as pyinfra sends a fact's (its connector arguments: sudo)."""
        with ctx_config.use(state.config.copy()), ctx_host.use(node):
            ok, output = run_as_facts_run(state, node, command)
        if not ok:
            raise SystemExit(f"{node.name}: {what} failed: {output.stderr}")
        return output.stdout_lines

    for node in inventory:
        with ctx_config.use(state.config.copy()), ctx_host.use(node):
            arguments = survey_arguments(settings_for(node))
            command = HostSurvey().command(**arguments)
            result["arguments"][node.name] = arguments
            result["host_data"][node.name] = {
                k: v for k, v in node.data.dict().items() if k.startswith("distcc_") or k in ("ssh_user", "_sudo")
            }
            result["command_sha256"][node.name] = command_sha256(command.get_raw_value())
            result.setdefault("commands", {})[node.name] = command.get_raw_value()
        active = node in state.active_hosts
        result["outputs"][node.name] = run(node, command, "the survey command") if active else None
    # Validation's second command, where it sends one (gcc_package_reads):
    # GccPackage's lines from those hosts, under "gcc_package".
    for name in gcc_package_reads(parse_surveys(result["outputs"]), result["inventory"]["builder"][0]):
        result.setdefault("gcc_package", {})[name] = run(
            inventory.get_host(name), StringCommand(GccPackage.command), "GccPackage's command",
        )
    print(json.dumps(result))


def heal(runs: tuple) -> None:
    for run in runs:
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "pyinfra"), "-y", INVENTORY, *run],
            cwd=REPO, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(run)} failed:\n{proc.stderr[-3000:]}")


def write_fact_fixtures() -> None:
    sys.path.insert(0, str(REPO))
    from facts.survey import parse_survey
    from lab.capture_fact import write_fixture

    nodes = _lab_nodes()
    captured = capture({})
    for stem, node in (("builder", nodes["builder"]), ("worker1", nodes["worker"])):
        output = captured["outputs"][node.fqdn]
        write_fixture(
            "survey.HostSurvey", stem, captured["arguments"][node.fqdn], captured["commands"][node.fqdn], output,
            parse_survey(output), f"{nodes['about']} {node.fqdn}: DISTCC BUILD MODE as the mode switch leaves it",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*")
    parser.add_argument("--list", action="store_true")
    parser.add_argument(
        "--fact-fixtures", action="store_true",
        help="re-capture tests/unit/facts/survey.HostSurvey/{builder,worker1}.json in the lab's current state",
    )
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child is not None:
        child(json.loads(args.child))
        return
    if args.list:
        for name, case in CASES.items():
            print(f"{name}: {case[0]}")
        return
    if args.fact_fixtures:
        write_fact_fixtures()
        return
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        raise SystemExit(f"unknown cases {', '.join(unknown)}; see --list")
    nodes = _lab_nodes()
    kind = nodes["kind"]
    wrong = [c for c in args.cases if LAB_OF_CASES.get(c, "usual") != kind]
    if wrong:
        raise SystemExit("\n".join(
            [f"this lab is the {kind} lab ({LAB_SETTINGS[kind]}), and these cases are captured from another:"]
            + [f"  {c}: the {LAB_OF_CASES.get(c, 'usual')} lab ({LAB_SETTINGS[LAB_OF_CASES.get(c, 'usual')]})"
               for c in wrong]
            + ["start that one (python3 -m lab up with those settings, its own LAB_PREFIX and LAB_SUBNET) and run again."]
        ))
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.cases or [c for c in CASES if LAB_OF_CASES.get(c, "usual") == kind]:
        about, role, breakage, restore, heal_with, data = CASES[name]
        builder, worker = nodes["builder"], nodes["worker"]
        # {nobody}: an address of the lab's subnet that no node has.
        addresses = {"builder": builder.address, "worker": worker.address,
                     "nobody": builder.address.rsplit(".", 1)[0] + ".99"}
        about = about.format(**addresses)
        node = nodes[role] if role else None
        print(f"{name}: {about}", file=sys.stderr, flush=True)
        if name in PREPARE:
            heal(PREPARE[name])
        try:
            if node and breakage:
                docker_sh(node.container, breakage.format(**addresses))
            fixture = {"case": name, "captured_from": f"{nodes['about']} {node.name if node else 'all nodes'}: {about}",
                       "data": data, **capture(data)}
        finally:
            if node and restore:
                docker_sh(node.container, restore.format(**addresses))
            if heal_with:
                heal((MODE_SWITCH,) if heal_with is True else heal_with)
        if heal_with or "restart distcc" in breakage + restore:
            # systemd refuses a sixth start of a unit within 10 s (StartLimitBurst=5,
            # StartLimitIntervalSec=10s): cases back to back restart distccd faster than that.
            time.sleep(START_LIMIT_INTERVAL)
        fixture.pop("commands")
        (OUT / f"{name}.json").write_text(json.dumps(fixture, indent=1, sort_keys=True) + "\n", encoding="ascii")


if __name__ == "__main__":
    main()
