"""Lab test harness: the Docker lab, pyinfra runs with --json, testinfra hosts,
and a digest of host state to prove that something changed nothing.

Every test here talks only to the lab's own containers on the lab's own
Docker network (and apt inside them reaches Debian's mirror).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import testinfra

from lab import docker_lab

REPO = Path(__file__).resolve().parents[2]
PYINFRA = str(Path(sys.executable).parent / "pyinfra")
INVENTORY = "inventories/lab.py"

@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)

    @property
    def totals(self) -> dict:
        return self.json["results"]["totals"]

    def changed_operations(self) -> list[str]:
        return [op["name"] for op in self.json["results"]["operations"] if op["success"]]

    def changed_on(self, host_name: str) -> list[str]:
        return [op["name"] for op in self.json["results"]["operations"] if host_name in op["success"]]

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def words(self) -> str:
        """The output as words (words_of)."""
        return words_of(self.output)

    @property
    def error(self) -> str:
        """The paragraph of pyinfra's last error, as words: the text after
        its "--> pyinfra error in FILE line N:" (or "--> Operation error ...:"),
        which the package wraps within 100 columns on the lines after it, up to
        a blank line, pyinfra's next "-->" or another host's "[name] " line."""
        lines = self.output.splitlines()
        starts = [i for i, line in enumerate(lines) if re.match(r"--> (pyinfra|Operation) error\b", line)]
        assert starts, self.output[-3000:]
        first = lines[starts[-1]]
        paragraph = [first.split(": ", 1)[1] if ": " in first else ""]
        for line in lines[starts[-1] + 1:]:
            # Other hosts go on printing ("[worker1] Ready: ..."), with no
            # blank line between.
            if not line.strip() or line.startswith("-->") or re.match(r"\s*\[[^\]\s]+\] ", line):
                break
            paragraph.append(line)
        return " ".join(" ".join(paragraph).split())


def words_of(text: str) -> str:
    """Printed text as its words, one space apart, pyinfra's "[host] "
    before a line left out: the package wraps every paragraph it prints
    within 100 columns, so a sentence is looked for whatever its line breaks."""
    lines = [re.sub(r"^\s*\[[^\]\s]+\] ?", "", line) for line in text.splitlines()]
    return " ".join(" ".join(lines).split())


def paragraphs_of(text: str) -> list[str]:
    """What validation and the smoke test print, as paragraphs: a line that
    starts with two spaces and then a word continues the one before it (a
    problem, a cause, the real path), joined with one space."""
    joined: list[str] = []
    for line in text.splitlines():
        if re.match(r"  \S", line) and joined:
            joined[-1] += " " + line.strip()
        else:
            joined.append(line)
    return joined


def pyinfra_invocation(
    *args: str, inventory: str | Path = INVENTORY, data: dict | None = None, json_output: bool = True,
    yes: bool = True, env: dict[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of `pyinfra [-y] [--json] INVENTORY
    ARGS`, run from the repository root. -y (or PYINFRA_YES, which the
    Makefile exports) skips change detection: a --dry run would plan
    nothing, so it goes without both, as does a run with yes=False, which
    plans and then asks for Enter on an empty stdin (EOFError): it shows what
    planning refuses and changes nothing. Every other run takes -y."""
    confirmed = yes and "--dry" not in args
    environment = dict(os.environ if env is None else env)
    if not confirmed:
        environment.pop("PYINFRA_YES", None)
    command = [PYINFRA, *(["-y"] if confirmed else []), *(["--json"] if json_output else [])]
    for key, value in (data or {}).items():
        # --data parses its value as JSON when it can: a list must be JSON.
        command += ["--data", f"{key}={json.dumps(value) if isinstance(value, (list, dict)) else value}"]
    return [*command, str(inventory), *args], environment


def pyinfra(*args: str, timeout: int = 600, **invocation) -> Run:
    """One pyinfra run to its end (pyinfra_invocation says how it is made);
    every suite runs pyinfra through this or start_pyinfra."""
    command, env = pyinfra_invocation(*args, **invocation)
    proc = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def start_pyinfra(*args: str, merge_output: bool = False, **invocation) -> subprocess.Popen:
    """The same run, started and left running: for a run cut off half-way
    or two runs at once. merge_output sends stderr into stdout, in order."""
    command, env = pyinfra_invocation(*args, **invocation)
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
        text=True, stdin=subprocess.DEVNULL,
    )


def deploy(name: str, **kwargs) -> Run:
    return pyinfra(f"deploys/{name}.py", **kwargs)


def ok(run: Run) -> Run:
    assert run.returncode == 0, run.output[-4000:]
    return run


def pyinfra_error(run: Run) -> str:
    """The one paragraph pyinfra prints for a refused run (the last, if
    there are several), as words (Run.error)."""
    return run.error


def host_lines(run: Run, fqdn: str) -> list[str]:
    """What the run printed about one host, without the `[host] ` prefix."""
    prefix = f"[{fqdn}] "
    return [line.strip()[len(prefix):].strip() for line in run.output.splitlines() if line.strip().startswith(prefix)]


def sh(container: str, script: str, check: bool = True) -> str:
    """Run a shell script as root inside a lab container (the test's own eyes)."""
    proc = subprocess.run(
        ["docker", "exec", "-i", container, "sh", "-c", script], capture_output=True, text=True, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{container}: {script!r} failed: {proc.stderr}")
    return proc.stdout


# What a deploy may change, read independently of the package's own facts.
STATE_SCRIPT = r"""
for u in distcc k3s k3s-agent k3s-server; do
  printf 'unit %s %s %s\n' "$u" "$(systemctl is-active $u 2>/dev/null)" "$(systemctl is-enabled $u 2>/dev/null)"
done
findmnt -rn -o TARGET,FSTYPE,OPTIONS | grep -v -e ' proc' -e ' sysfs' -e ' cgroup' | sort
for f in /etc/fstab /etc/profile.d/distcc-build.sh /home/pi/.distcc/hosts \
         /etc/systemd/system/distcc.service.d/override.conf; do
  printf 'file %s %s\n' "$f" "$(sha256sum "$f" 2>/dev/null | cut -c1-16)"
done
ls -l /usr/lib/distcc 2>/dev/null | awk 'NR > 1 {print "link", $9, $11}'
dpkg-query -W -f '${Package} ${Status}\n' distcc 2>/dev/null
ps -eo user=,comm= | sort | uniq -c | grep -v -e ' ps$' -e ' sort$' -e ' uniq$' -e ' grep$' -e ' sh$' -e ' sleep$'
"""


# The gcc each Debian release makes the default (`gcc-N`), and an older one it
# also packages: the compiler-mismatch tests install that on a worker.
DEFAULT_GCC = {"bookworm": "12", "trixie": "14"}
OLDER_GCC = {"bookworm": "11", "trixie": "13"}
# The package that holds an amd64 node's gcc-N driver: trixie splits it out
# by architecture.
GCC_DRIVER_PACKAGE = {"bookworm": "gcc-{}", "trixie": "gcc-{}-x86-64-linux-gnu"}


def gcc_version(node: docker_lab.Node) -> str:
    """The node's gcc version as H-GCC names it (gcc -dumpfullversion)."""
    return sh(node.container, "gcc -dumpfullversion").strip()


def big_c_source(functions: int = 3000) -> str:
    """A C file that keeps cc1 busy for about a minute at -O2 (long enough to be seen)."""
    parts = ["int sink;"]
    for i in range(functions):
        parts.append(
            f"int f{i}(int *a, int n) {{ int s = {i};"
            f" for (int j = 0; j < n; j++) {{ s += a[j] * (j ^ {i}); if (s > {i * 7 + 3}) s -= a[(j * 3) % n]; }}"
            f" for (int j = n - 1; j > 0; j--) a[j] = a[j - 1] + (s & {i % 255 + 1}); return s; }}"
        )
    return "\n".join(parts) + "\n"


def state_digest(container: str) -> str:
    return sh(container, STATE_SCRIPT, check=False)


def cluster_digest() -> dict[str, str]:
    return {node.container: state_digest(node.container) for node in docker_lab.nodes()}


def settled_digest() -> dict[str, str]:
    """cluster_digest() once it is stable (sshd sessions of a finished run
    take a moment to go away)."""
    digest = cluster_digest()
    for _ in range(10):
        time.sleep(0.5)
        again = cluster_digest()
        if again == digest:
            return digest
        digest = again
    return digest


def ssh_host(node: docker_lab.Node, sudo: bool = True):
    """testinfra over SSH as pi, with sudo unless told: how real Pis are reached."""
    config = REPO / ".lab" / "ssh" / "config"
    config.write_text(
        "Host *\n"
        f"  User pi\n  IdentityFile {docker_lab.SSH_KEY}\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    return testinfra.get_host(f"ssh://{node.address}", ssh_config=str(config), sudo=sudo)


def docker_host(node: docker_lab.Node):
    """testinfra over `docker exec` as root: an independent second look."""
    return testinfra.get_host(f"docker://{node.container}")


def recreate_lab() -> list[docker_lab.Node]:
    docker_lab.down()
    return docker_lab.up(int(os.environ.get("LAB_WORKERS", "2")))


def running_lab() -> list[docker_lab.Node]:
    nodes = [n for n in docker_lab.nodes() if n.state == "running"]
    if not any(n.role == "builder" for n in nodes) or not any(n.role == "worker" for n in nodes):
        nodes = docker_lab.up(int(os.environ.get("LAB_WORKERS", "2")))
    return nodes


def by_role(nodes: list[docker_lab.Node], role: str) -> list[docker_lab.Node]:
    return [n for n in nodes if n.role == role]


def build_mode_ok() -> None:
    """Put the lab in build mode and assert that validation passes."""
    run = deploy("mode_switch")
    assert run.returncode == 0, run.stderr[-3000:]
    check = deploy("cluster_distcc_validate", json_output=False)
    assert check.returncode == 0, check.stderr[-3000:]


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- suites with a lab of their own (tests/lab_arm, tests/lab_stock) -------------


def deselect_unless_marked(config, items, marker, directory: str) -> None:
    """Mark every test under directory with marker, and leave them out unless
    `-m` names it: such a suite runs its own lab, which `pytest tests` must
    not pay for."""
    wanted = marker.name in (config.option.markexpr or "")
    kept, dropped = [], []
    for item in items:
        if directory in str(item.path):
            item.add_marker(marker)
            if not wanted:
                dropped.append(item)
                continue
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


class PrivateLab:
    """A lab of its own prefix and network, driven through subprocesses
    (`python -m lab`, pyinfra) with that environment, as a user would. A
    suite's subclass says what else its lab's environment holds (lab_settings)."""

    # Inherited settings that would reshape this lab; it sets its own.
    DROPPED = ("LAB_ARCH", "LAB_WORKER_ARCHS", "LAB_WORKER_SUITES", "LAB_LEAVE_OUT")
    TIMEOUT = 600

    def __init__(self, prefix: str, subnet: str) -> None:
        self.prefix, self.subnet = prefix, subnet
        self.report = REPO / "reports" / f"validate-{prefix}.json"

    def lab_settings(self) -> dict[str, str]:
        return {}

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in self.DROPPED}
        env.update(LAB_PREFIX=self.prefix, LAB_SUBNET=self.subnet, **self.lab_settings())
        return env

    def lab(self, command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lab", command], cwd=REPO, env=self._env(),
            capture_output=True, text=True, timeout=self.TIMEOUT,
        )

    def fresh(self) -> None:
        """Down, then up anew."""
        down = self.lab("down")
        assert down.returncode == 0, down.stderr
        up = self.lab("up")
        assert up.returncode == 0, up.stdout + up.stderr
        print(up.stdout)

    def pyinfra(self, deploy: str, json_output: bool = False, **data: str) -> Run:
        return pyinfra(
            f"deploys/{deploy}.py", data={"distcc_report_path": str(self.report), **data}, json_output=json_output,
            env=self._env(), timeout=self.TIMEOUT,
        )

    def container(self, hostname: str) -> str:
        return f"{self.prefix}-{hostname}"

    def reboot(self) -> None:
        """`docker restart` of every node of the subclass's hostnames at once
        (systemd boots again), then `lab up`, which starts nothing new and
        waits for systemd and sshd."""
        with ThreadPoolExecutor(max_workers=len(self.hostnames)) as pool:
            list(pool.map(
                lambda h: subprocess.run(["docker", "restart", self.container(h)], check=True, capture_output=True,
                                         timeout=120),
                self.hostnames,
            ))
        up = self.lab("up")
        assert up.returncode == 0, up.stdout + up.stderr

    def sh(self, hostname: str, script: str) -> str:
        """A shell script as root inside a node (the test's own eyes)."""
        proc = subprocess.run(
            ["docker", "exec", "-i", self.container(hostname), "sh", "-c", script],
            capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, f"{hostname}: {script!r} failed: {proc.stderr}"
        return proc.stdout.strip()
