"""Capture the smoke test's own scripts' output from the lab, as unit-test
fixtures for its judge (tests/unit/smoke/CASE.json).

    python3 -m lab.capture_smoke [CASE ...]     # no CASE: every case

Run from the repository root with the lab's LAB_PREFIX/LAB_SUBNET exported
and the lab up. Each case first runs the mode switch with the case's host
data, breaks one thing (as root through `docker exec`), then runs the very
scripts deploys/cluster_distcc_smoketest.py sends: each worker's watch as
root and, at the same time, the builder's compiles as the build user `pi`;
it saves their output lines and restores the node. The fixture holds what
the judge needs and nothing invented: the marker, the workers, the cross
compilers, the timeout and every line; and each script's arguments and the
sha256 of the script they made, under "builder" and each worker's name (so
tests/unit/test_smoketest.py fails when the code sends another script).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "unit" / "smoke"
CROSS = ["aarch64-linux-gnu-gcc"]
TIMEOUT = 60

CC1 = "/usr/lib/gcc-cross/aarch64-linux-gnu/12/cc1"
# case: (what is broken, the node broken, breakage, restore, cross compilers)
CASES: dict[str, tuple[str, str, str, str, list[str]]] = {
    "cross-healthy": (
        "mode switch with distcc_cross_compilers=['aarch64-linux-gnu-gcc'], nothing broken", "worker1", "", "", CROSS,
    ),
    "cross-whitelist-missing": (
        "worker1: rm /usr/lib/distcc/aarch64-linux-gnu-gcc (its whitelist lacks the cross compiler)", "worker1",
        "rm /usr/lib/distcc/aarch64-linux-gnu-gcc", "update-distcc-symlinks", CROSS,
    ),
    "cross-builder-broken": (
        f"builder: {CC1} moved away (the builder's cross compiler cannot preprocess)", "builder",
        f"mv {CC1} /root/cc1.capture", f"mv /root/cc1.capture {CC1}", CROSS,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from deploys.library.smoketest import builder_script, compilers_tested, worker_script
    from lab.capture_fact import command_sha256
    from lab.docker_lab import nodes

    running = [n for n in nodes() if n.state == "running"]
    builder = next(n for n in running if n.role == "builder")
    workers = sorted((n for n in running if n.role == "worker"), key=lambda n: n.fqdn)
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.cases or list(CASES):
        about, broken, breakage, restore, cross = CASES[name]
        node = builder if broken == "builder" else workers[0]
        print(f"{name}: {about}", file=sys.stderr, flush=True)
        data = ["--data", "distcc_cross_compilers=" + json.dumps(cross)]
        subprocess.run(
            [str(Path(sys.executable).parent / "pyinfra"), "-y", "inventories/lab.py", "deploys/mode_switch.py", *data],
            cwd=REPO, check=True, capture_output=True, timeout=900, stdin=subprocess.DEVNULL,
        )
        marker = uuid.uuid4().hex[:12]
        jobs = len(compilers_tested(cross))
        if breakage:
            subprocess.run(["docker", "exec", node.container, "sh", "-c", breakage], check=True, timeout=120)
        # Each script's arguments, by whose it is: "builder" and each worker's name.
        arguments: dict[str, dict] = {
            w.fqdn: {"marker": marker, "log_file": "/var/log/distccd/distccd.log", "seconds": TIMEOUT * jobs + 10,
                     "jobs": jobs}
            for w in workers
        }
        arguments["builder"] = {
            "marker": marker, "tmpfs_path": "/tmp/kernel-build", "workers": [[w.fqdn, 3632] for w in workers],
            "timeout": TIMEOUT, "cross": cross,
        }
        scripts = {
            whose: builder_script(**given) if whose == "builder" else worker_script(**given)
            for whose, given in arguments.items()
        }
        try:
            watches = {
                w.fqdn: subprocess.Popen(
                    ["docker", "exec", w.container, "sh", "-c", scripts[w.fqdn]], stdout=subprocess.PIPE, text=True,
                )
                for w in workers
            }
            time.sleep(1)
            built = subprocess.run(
                ["docker", "exec", "-u", "pi", "-w", "/home/pi", builder.container, "sh", "-c", scripts["builder"]],
                capture_output=True, text=True, timeout=TIMEOUT * jobs * 6, check=True,
            )
            worker_lines = {fqdn: watch.communicate(timeout=TIMEOUT * jobs + 60)[0].splitlines()
                            for fqdn, watch in watches.items()}
        finally:
            if restore:
                subprocess.run(["docker", "exec", node.container, "sh", "-c", restore], check=True, timeout=120)
        fixture = {
            "case": name, "captured_from": f"lab: {about}", "marker": marker, "cross": cross, "timeout": TIMEOUT,
            "workers": [w.fqdn for w in workers],
            "arguments": arguments,
            "command_sha256": {whose: command_sha256(script) for whose, script in scripts.items()},
            "builder_lines": [line.strip() for line in built.stdout.splitlines()],
            "worker_lines": {fqdn: [line.strip() for line in lines] for fqdn, lines in worker_lines.items()},
        }
        (OUT / f"{name}.json").write_text(json.dumps(fixture, indent=1) + "\n", encoding="ascii")


if __name__ == "__main__":
    main()
