"""The shell the package keeps as files (templates/*.sh.j2), rendered as a
host is sent it, passes shellcheck; rendering keeps what runs and leaves
only the reader's comments and blank lines out."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from deploys.library.smoketest import builder_script, real_path_script
from facts._templates import TEMPLATES, render_script, render_template
from facts.distcc import PS_COMMAND
from facts.k3s import K3S_PATHS
from facts.systemd import K3S_NAMES, SHIM_NAMES
from operations.distcc import LOG_REASON_FILTER, UNIT
from operations.k3s import POD_STOP_REPORT

# Each script with the context its users render it with.
SCRIPTS = {
    "apt-get-explained.sh.j2": {"command": "DEBIAN_FRONTEND=noninteractive apt-get install -y distcc"},
    "distcc-build-processes.sh.j2": {"ps_command": PS_COMMAND, "port": 3632},
    "processes-killed.sh.j2": {"targets": ["1523:distccd", "1574:distccd"], "names": ["distccd"], "ticks": 25},
    "smoke-builder.sh.j2": {
        "marker": "907d60b59f0d", "tmpfs_path": "/tmp/kernel-build", "functions": 400, "timeout": 60,
        "compilers": ["gcc", "aarch64-linux-gnu-gcc"],
        "workers": [
            {"index": 0, "name": "worker1.distcc.internal", "hosts": "worker1.distcc.internal:3632/1", "jobs": [
                {"id": "0", "compiler": "gcc", "position": 0, "native": True, "base": "base.c"},
                {"id": "0.1", "compiler": "aarch64-linux-gnu-gcc", "position": 1, "native": False, "base": "base-cross.c"},
            ]},
        ],
        "real_path": real_path_script(60, pump=True),
    },
    "smoke-real-path.sh.j2": {"files_per_slot": 2, "timeout": 240, "pump": True},
    "smoke-worker.sh.j2": {
        "marker": "907d60b59f0d", "log_file": "/var/log/distccd/distccd.log", "seconds": 130, "jobs": 2,
        "max_tables": 20, "ps_command": PS_COMMAND,
    },
    "systemd-unit-sources.sh.j2": {"unit": "distcc.service"},
    "distccd-started.sh.j2": {
        "log_file": "/var/log/distccd.log", "unit": UNIT, "port": 3632, "address": "172.31.242.3",
        "reason_filter": LOG_REASON_FILTER,
    },
    "k3s-pods-listed.sh.j2": {"k3s_paths": K3S_PATHS},
    "k3s-nodes-listed.sh.j2": {"k3s_paths": K3S_PATHS},
    "k3s-pods-stopped.sh.j2": {
        "units": ["k3s-agent.service"], "grace": 30, "report": POD_STOP_REPORT, "k3s_paths": K3S_PATHS,
    },
    "k3s-stopped.sh.j2": {
        "enabled": ["k3s-agent.service"], "stop": True, "pods": True, "running": ["k3s-agent.service"],
        "units": ["k3s-agent.service"], "grace": 30, "report": POD_STOP_REPORT, "k3s_paths": K3S_PATHS,
        "killall": "/usr/local/bin/k3s-killall.sh", "ticks": 25,
        "leftover_message": '"k3s is stopped but $k3s_left k3s processes and $shims containerd-shim"' ' "processes (pods) still run."',
        "shim_names": SHIM_NAMES, "k3s_names": K3S_NAMES,
    },
}


def test_every_shell_template_is_checked_here():
    assert sorted(p.name for p in TEMPLATES.glob("*.sh.j2") if p.name != "distcc-profile.sh.j2") == sorted(SCRIPTS)


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck is not installed (make unit installs it)")
@pytest.mark.parametrize("template", sorted(SCRIPTS))
def test_shellcheck_passes_on_the_script_as_sent(template):
    script = render_script(template, SCRIPTS[template])
    checked = subprocess.run(["shellcheck", "-s", "sh", "-"], input=script + "\n", capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout


@pytest.mark.parametrize("template", sorted(SCRIPTS))
def test_what_is_sent_is_the_file_without_its_comments(template):
    full = render_template(template, SCRIPTS[template]).splitlines()
    kept = [line for line in full if line.strip() and not line.lstrip().startswith("#")]
    assert render_script(template, SCRIPTS[template]).splitlines() == kept
    assert subprocess.run(["sh", "-n"], input="\n".join(kept) + "\n", text=True).returncode == 0


def test_the_smoke_builder_script_is_its_template_with_the_workers_jobs():
    """builder_script() fills smoke-builder.sh.j2 as the context above says."""
    context = SCRIPTS["smoke-builder.sh.j2"]
    script = builder_script(
        context["marker"], context["tmpfs_path"], [("worker1.distcc.internal", 3632)], 60, ["aarch64-linux-gnu-gcc"], True,
    )
    assert script == render_script("smoke-builder.sh.j2", context)
