"""The pure parts of the benchmark (bench/analysis.py): medians, the command
counter on pyinfra -vv output captured from the lab, the targets and the
markdown. No Docker, no timing."""

from __future__ import annotations

import shlex
import subprocess

from bench.analysis import (
    PROBE,
    PROBE_END,
    evaluate_targets,
    median,
    parse_pyinfra_log,
    render_markdown,
    summarize_counts,
    summarize_samples,
    survey_scope,
    survey_work,
)

B, W = "builder.distcc.internal", "worker1.distcc.internal"
ROLES = {B: "builder", W: "worker", "worker2.distcc.internal": "worker"}

# pyinfra -y -vv deploys/mode_switch.py on the lab (shortened; one command
# spans several lines, one runs without sudo, one line carries ANSI colour).
MODE_SWITCH_VV = """\
--> Loading config...
--> Connecting to hosts...
    [worker1.distcc.internal] Connected
    [builder.distcc.internal] Connected

--> Preparing operation files...
    Loading: deploys/mode_switch.py
[builder.distcc.internal] >>> sudo -H -n sh -c 'p=/tmp/kernel-build ; printf "path %s\\n" "$p"'
[worker1.distcc.internal] >>> sudo -H -n sh -c 'n=builder.distcc.internal ; printf "peer %s\\n" "$n"'
    [builder.distcc.internal] Loaded fact facts.mounts.TmpfsMount (path=/tmp/kernel-build)
    [worker1.distcc.internal] Loaded fact facts.network.PeerRoute (peer=builder.distcc.internal)
\x1b[1m[worker1.distcc.internal]\x1b[0m >>> sudo -H -n sh -c 'printf '"'"'cpus %s\\n'"'"' "$(nproc)"'
    [worker1.distcc.internal] Loaded fact facts.host.HostResources
    [worker1.distcc.internal] Ready: deploys/mode_switch.py

--> Beginning operation run...
--> Starting operation: mode switch | distccd bootstrap | distccd override (foreground, hardened)
    [builder.distcc.internal] Skipped
[worker1.distcc.internal] >>> sudo -H -n sh -c 'if [ -n "$TMPDIR" ] && [ -d "$TMPDIR" ] && [ -w "$TMPDIR" ]; then
    echo "$TMPDIR";
else
    echo "";
fi'
    [worker1.distcc.internal] Loaded fact server.TmpDir
[worker1.distcc.internal] >>> sudo -H -n sh -c 'cp /tmp/pyinfra-2502 /etc/systemd/system/distcc.service.d/override.conf.tmp'
[worker1.distcc.internal] >>> sh -c 'rm -f /tmp/pyinfra-2502'
    [worker1.distcc.internal] Success
--> Results:
"""

# pyinfra -y -vv deploys/mode_switch.py with no changes on the 2-worker
# benchmark lab at 96a8920 (bench/runs/w02/mode_switch_noop-r1.log), lines cut
# at 130 characters and the operations after the second left out (they only
# print noop): one FactBundle per phase, plus a worker's HostResources read
# once per run.
MODE_SWITCH_NOOP_VV = r"""--> Loading config...
--> Loading inventory...
--> Connecting to hosts...
    [builder.distcc.internal] Connected
    [worker1.distcc.internal] Connected
    [worker2.distcc.internal] Connected

--> Preparing operation files...
    Loading: deploys/mode_switch.py
[worker2.distcc.internal] >>> sudo -H -n sh -c 'echo '"'"'##bundle-part 0'"'"'; ( for u in k3s k3s-server k3s-agent ; do printf '"
[builder.distcc.internal] >>> sudo -H -n sh -c 'echo '"'"'##bundle-part 0'"'"'; ( for u in k3s k3s-server k3s-agent ; do printf '"
[worker1.distcc.internal] >>> sudo -H -n sh -c 'echo '"'"'##bundle-part 0'"'"'; ( for u in k3s k3s-server k3s-agent ; do printf '"
    [worker1.distcc.internal] Loaded fact facts.bundle.FactBundle (parts=[['facts.systemd.K3sUnits', {'units': ['k3s', 'k3s-server
[worker1.distcc.internal] >>> sudo -H -n sh -c 'printf '"'"'cpus %s\n'"'"' "$(nproc)"; awk '"'"'/^MemTotal:/ {printf "memory %.0f\
    [worker2.distcc.internal] Loaded fact facts.bundle.FactBundle (parts=[['facts.systemd.K3sUnits', {'units': ['k3s', 'k3s-server
[worker2.distcc.internal] >>> sudo -H -n sh -c 'printf '"'"'cpus %s\n'"'"' "$(nproc)"; awk '"'"'/^MemTotal:/ {printf "memory %.0f\
    [builder.distcc.internal] Loaded fact facts.bundle.FactBundle (parts=[['facts.systemd.K3sUnits', {'units': ['k3s', 'k3s-server
[builder.distcc.internal] >>> sudo -H -n sh -c 'echo '"'"'##bundle-part 0'"'"'; ( p=/home/pi/.distcc ; printf '"'"'path %s\n'"'"'
    [worker1.distcc.internal] Loaded fact facts.host.HostResources
    [worker1.distcc.internal] Ready: deploys/mode_switch.py
    [worker2.distcc.internal] Loaded fact facts.host.HostResources
    [worker2.distcc.internal] Ready: deploys/mode_switch.py
    [builder.distcc.internal] Loaded fact facts.bundle.FactBundle (parts=[['facts.paths.PathStatus', {'path': '/home/pi/.distcc'}]
    [builder.distcc.internal] Ready: deploys/mode_switch.py

--> Beginning operation run...
--> Starting operation: mode switch | k3s stopped | Stop k3s and its pods, disable its units
[worker2.distcc.internal] >>> sudo -H -n sh -c 'echo '"'"'##bundle-part 0'"'"'; ( for u in k3s k3s-server k3s-agent ; do printf '"
[builder.distcc.internal] >>> sudo -H -n sh -c 'echo '"'"'##bundle-part 0'"'"'; ( for u in k3s k3s-server k3s-agent ; do printf '"
[worker1.distcc.internal] >>> sudo -H -n sh -c 'echo '"'"'##bundle-part 0'"'"'; ( for u in k3s k3s-server k3s-agent ; do printf '"
    [builder.distcc.internal] Loaded fact facts.bundle.FactBundle (parts=[['facts.systemd.K3sUnits', {'units': ['k3s', 'k3s-server
    [builder.distcc.internal] noop: k3s stopped and disabled, no pod left (k3s)
    [builder.distcc.internal] No changes
    [worker2.distcc.internal] Loaded fact facts.bundle.FactBundle (parts=[['facts.systemd.K3sUnits', {'units': ['k3s', 'k3s-server
    [worker2.distcc.internal] noop: k3s stopped and disabled, no pod left (k3s-agent)
    [worker2.distcc.internal] No changes
    [worker1.distcc.internal] Loaded fact facts.bundle.FactBundle (parts=[['facts.systemd.K3sUnits', {'units': ['k3s', 'k3s-server
    [worker1.distcc.internal] noop: k3s stopped and disabled, no pod left (k3s-agent)
    [worker1.distcc.internal] No changes

--> Starting operation: mode switch | distcc installed | Install the distcc client
    [worker2.distcc.internal] Skipped
    [builder.distcc.internal] noop: distcc, make already installed
    [builder.distcc.internal] No changes
    [worker1.distcc.internal] Skipped

--> Results:
"""

# The survey arguments validation's own code built for that lab
# (bench/run.py survey_targets() at 96a8920): a worker asks about the builder
# only, the builder about every worker.
SURVEY_ARGUMENTS_2_WORKERS = {
    B: {"build_user": "pi", "builder_peer": B, "k3s_units": ["k3s", "k3s-server", "k3s-agent"],
        "names": [W, "worker2.distcc.internal"], "port": 3632, "profile_script": "/etc/profile.d/distcc-build.sh",
        "sent_names": ["cc", "c++", "gcc", "g++"], "tmpfs_path": "/tmp/kernel-build",
        "workers": [W, "worker2.distcc.internal"]},
    W: {"builder_peer": B, "k3s_units": ["k3s", "k3s-server", "k3s-agent"], "names": [B], "port": 3632},
}

# pyinfra -y -vv deploys/cluster_distcc_validate.py: the known case, one
# survey per host.
VALIDATE_VV = """\
--> Preparing operation files...
    Loading: deploys/cluster_distcc_validate.py
[builder.distcc.internal] >>> sudo -H -n sh -c 'echo '"'"'##survey identity'"'"'; ( printf "version %s\\n" ) 2>/dev/null; true'
[worker1.distcc.internal] >>> sudo -H -n sh -c 'echo '"'"'##survey identity'"'"'; ( printf "version %s\\n" ) 2>/dev/null; true'
    [worker1.distcc.internal] Loaded fact facts.survey.HostSurvey (builder_peer=builder.distcc.internal)
    [builder.distcc.internal] Loaded fact facts.survey.HostSurvey (build_user=pi, builder_peer=builder.distcc.internal)

host                    | conn  tmpfs
builder.distcc.internal | ok    ok
validation: 25 PASS, 0 WARN, 0 FAIL
--> Beginning operation run...
--> Results:
"""


def test_median():
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5
    assert median([None, 5, None]) == 5
    assert median([]) is None
    assert median([None]) is None


def test_counter_on_mode_switch_output():
    log = parse_pyinfra_log(MODE_SWITCH_VV)
    assert log["commands"] == {B: 1, W: 5}
    assert log["sudo"] == {B: 1, W: 4}
    assert log["prepare"] == {B: 1, W: 2}
    assert log["execute"] == {W: 3}
    assert log["facts"][W] == {"facts.network.PeerRoute": 1, "facts.host.HostResources": 1, "server.TmpDir": 1}
    assert log["facts"][B] == {"facts.mounts.TmpfsMount": 1}


def test_counter_known_case_validation_is_one_command_per_host():
    log = parse_pyinfra_log(VALIDATE_VV)
    assert log["commands"] == {B: 1, W: 1}
    assert log["facts"] == {B: {"facts.survey.HostSurvey": 1}, W: {"facts.survey.HostSurvey": 1}}


def test_summarize_counts_includes_silent_hosts():
    summary = summarize_counts({B: 17, W: 21}, ROLES)
    assert summary == {"max": 21, "builder": 17, "worker_max": 21, "worker_min": 0, "total": 38}


def _medians(wall: float, x_floor: float, noop_x: float, noop_wall: float, noop_commands: int = 3) -> dict:
    return {
        "connect_only": {"n": 5, "wall_s": 0.8, "commands_max": 1},
        "floor": {"n": 15, "wall_s": wall / x_floor, "commands_max": 1},
        "survey_exec": {"n": 5, "wall_s": 2.0, "x_floor": 2.4, "commands_max": 1},
        "pyinfra_floor": {"n": 5, "wall_s": 1.2 * wall / x_floor, "x_floor": 1.2, "commands_max": 1,
                          "commands_builder": 1, "commands_worker_max": 1, "peak_mib": 50.0, "cpu_s": 0.6},
        "validate": {"n": 5, "wall_s": wall, "x_floor": x_floor, "commands_max": 1,
                     "commands_builder": 1, "commands_worker_max": 1, "peak_mib": 57.25, "cpu_s": 1.5},
        "mode_switch_noop": {"n": 5, "wall_s": noop_wall, "x_floor": noop_x, "commands_max": noop_commands,
                             "commands_max_worst": noop_commands, "commands_builder": noop_commands,
                             "commands_worker_max": noop_commands, "peak_mib": 60.0},
        "mode_switch_from_k3s": {"n": 5, "wall_s": noop_wall * 1.5, "x_floor": noop_x * 1.5, "commands_max": 12,
                                 "commands_builder": 12, "commands_worker_max": 10, "peak_mib": 61.0, "failed": 1},
    }


def test_summarize_samples():
    samples = [
        {"wall_s": 2.0, "x_floor": 1.2, "peak_kib": 1024 * 50, "cpu_s": 0.5, "command_summary": {"max": 3, "builder": 3, "worker_max": 3}},
        {"wall_s": 4.0, "x_floor": 1.4, "peak_kib": 1024 * 70, "command_summary": {"max": 7, "builder": 3, "worker_max": 7},
         "ok": False},
        {"wall_s": 3.0, "x_floor": 1.3, "peak_kib": None, "command_summary": {"max": 3, "builder": 3, "worker_max": 3}},
    ]
    summary = summarize_samples(samples)
    assert summary["wall_s"] == 3.0 and summary["x_floor"] == 1.3
    assert summary["peak_mib"] == 60.0 and summary["failed"] == 1
    assert summary["cpu_s"] == 0.5
    # The median run sends 3 commands, the worst 7: the target reads the worst.
    assert summary["commands_max"] == 3 and summary["commands_max_worst"] == 7


def test_counter_on_a_no_change_mode_switch_is_three_commands_per_host():
    log = parse_pyinfra_log(MODE_SWITCH_NOOP_VV)
    w2 = "worker2.distcc.internal"
    assert log["commands"] == {B: 3, W: 3, w2: 3}
    assert log["sudo"] == {B: 3, W: 3, w2: 3}
    assert log["prepare"] == {B: 2, W: 2, w2: 2}
    assert log["execute"] == {B: 1, W: 1, w2: 1}
    assert log["facts"][W] == {"facts.bundle.FactBundle": 2, "facts.host.HostResources": 1}
    assert log["facts"][B] == {"facts.bundle.FactBundle": 3}
    assert summarize_counts(log["commands"], ROLES)["max"] == 3


def test_probe_is_issue_14s_commands_each_allowed_to_fail():
    commands = PROBE.split("; ")
    assert commands == [
        "systemctl is-active distcc",
        "test -f /etc/systemd/system/distcc.service.d/override.conf",
        "test -L /usr/lib/distcc/gcc",
        "gcc -dumpfullversion",
        "gcc -dumpmachine",
        "echo $PATH",
        "ip -o link show eth0",
        "hostname -f",
        "ss -ltn 'sport = :3632'",
        "DISTCC_HOSTS=localhost distcc --show-hosts",
        f"echo '{PROBE_END}'",
    ]
    # Every command failing (none found on this PATH) still runs the rest:
    # the probe reaches its end and sh exits 0, as it must on a broken node.
    proc = subprocess.run(["/bin/sh", "-c", PROBE], env={"PATH": "/nonexistent"}, capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == ["/nonexistent", PROBE_END]
    # What bench/run.py sends through ssh unquotes to the probe itself.
    assert shlex.split("sudo -H -n sh -c " + shlex.quote(PROBE))[-1] == PROBE


def test_survey_scope_from_validations_arguments():
    assert survey_scope(SURVEY_ARGUMENTS_2_WORKERS[W], "worker") == {"names": 1, "peers": 1}
    assert survey_scope(SURVEY_ARGUMENTS_2_WORKERS[B], "builder") == {"names": 2, "peers": 2}
    # Before H-NAMES a worker resolved every node's name: 3 on this lab.
    every_name = dict(SURVEY_ARGUMENTS_2_WORKERS[W], names=[B, W, "worker2.distcc.internal"])
    assert survey_scope(every_name, "worker") == {"names": 3, "peers": 1}


def test_survey_work_divides_each_host_by_its_own_probe():
    # Seconds from starting all ssh clients, from the trial run's floor and
    # survey exec at 2 workers; worker1's survey is the slowest worker's.
    rounds = [
        {"probe": {B: 0.70, W: 0.58, "worker2.distcc.internal": 0.68},
         "survey": {B: 1.81, W: 1.21, "worker2.distcc.internal": 1.20}},
        {"probe": {B: 0.50, W: 0.40, "worker2.distcc.internal": 0.25},
         "survey": {B: 2.00, W: 0.80, "worker2.distcc.internal": 1.00}},
    ]
    work = survey_work(rounds, ROLES)
    assert abs(work["worker_max_x_probe"] - (1.21 / 0.58 + 1.00 / 0.25) / 2) < 1e-9
    assert abs(work["builder_x_probe"] - (1.81 / 0.70 + 2.00 / 0.50) / 2) < 1e-9
    assert abs(work["worker_max_survey_s"] - (1.21 + 1.00) / 2) < 1e-9
    assert abs(work["builder_survey_s"] - (1.81 + 2.00) / 2) < 1e-9
    # A host whose probe time is missing (ssh killed) is left out, not divided by 0.
    assert survey_work([{"probe": {B: None}, "survey": {B: 1.0}}], ROLES)["builder_x_probe"] is None


def _scope(size: int, worker_names: int = 1) -> dict:
    return {"worker_names": worker_names, "worker_peers": 1, "builder_names": size, "builder_peers": size,
            "worker_max_survey_s": 1.2, "worker_max_x_probe": 2.08, "builder_survey_s": 1.81, "builder_x_probe": 2.59}


def test_targets_at_every_size():
    medians = {
        1: _medians(2.0, 1.4, 2.5, 4.0),
        16: _medians(3.0, 1.6, 2.9, 9.0, noop_commands=7),
    }
    targets = {t["id"]: t for t in evaluate_targets(medians, {1: _scope(1), 16: _scope(16, worker_names=17)})}
    assert targets["validate-floor-1"]["met"]
    assert "validation at 1 worker <= 1.5x floor: MET (1.40x floor: 0.10x under the limit of 1.50x)" in (
        targets["validate-floor-1"]["text"])
    assert not targets["validate-floor-16"]["met"]
    assert "MISSED (1.60x floor: 0.10x (7%) over the limit of 1.50x)" in targets["validate-floor-16"]["text"]
    assert targets["mode-switch-noop-1"]["met"]
    # Within 3x the floor but 7 commands on some host: missed.
    assert not targets["mode-switch-noop-16"]["met"]
    assert "7 commands/host at most: 1 (17%) over the limit of 6; 2.90x floor: 0.10x under the limit of 3x" in (
        targets["mode-switch-noop-16"]["text"])
    assert targets["survey-scope-1"]["met"] and not targets["survey-scope-16"]["met"]
    assert "every worker at most 17/1, the builder 16/16" in targets["survey-scope-16"]["text"]
    assert "slowest worker 2.08x (1.20 s), builder 2.59x (1.81 s)" in targets["survey-scope-16"]["text"]
    # The floor is 2.0 / 1.4 s at 1 worker, 3.0 / 1.6 s at 16.
    assert targets["pyinfra-floor-1"]["met"] is None
    assert targets["pyinfra-floor-1"]["text"] == (
        "REPORT pyinfra floor at 1 worker: 1.71 s = 1.20x floor; the 1.5x validation limit is 2.14 s "
        "(0.43 s above pyinfra alone)")
    medians[16]["pyinfra_floor"].update(wall_s=3.75, x_floor=2.0)
    over = {t["id"]: t for t in evaluate_targets(medians)}["pyinfra-floor-16"]
    assert over["text"] == (
        "REPORT pyinfra floor at 16 workers: 3.75 s = 2.00x floor; the 1.5x validation limit is 2.81 s "
        "(pyinfra alone needs 0.94 s more than that)")
    assert over["value"] == {"wall_s": 3.75, "x_floor": 2.0, "validate_limit_s": 1.5 * 3.0 / 1.6}
    assert targets["peak-memory-16"]["met"] is None
    assert "cluster_distcc_validate.py 57.2 MiB" in targets["peak-memory-16"]["text"]
    assert not any(t.startswith("growth") for t in targets)


def test_markdown_tables_and_targets_are_ascii():
    medians = {1: _medians(2.0, 2.0, 3.0, 4.0), 16: _medians(3.0, 1.2, 4.5, 9.0)}
    scopes = {1: _scope(1), 16: _scope(16)}
    results = {
        "machine": {"date": "2026-01-01T00:00:00Z", "cpu_model": "AMD EPYC", "nproc": 2},
        "config": {"sizes": [1, 16], "repeat": 5, "arch": "arm64"},
        "sizes": {str(size): {"medians": m} for size, m in medians.items()},
        "scopes": {str(size): s for size, s in scopes.items()},
        "targets": evaluate_targets(medians, scopes),
        "breakdown": {"size": 16, "prepare": "2 / 2", "execute": "1 / 1",
                      "facts": {f"worker {W}": {"facts.bundle.FactBundle": 2, "facts.host.HostResources": 1}}},
        "anomalies": [],
    }
    text = render_markdown(results)
    assert text.isascii()
    assert text.startswith("# Benchmark: DISTCC BUILD MODE deploys on the Docker lab (arm64)")
    assert PROBE in text
    assert "### 16 workers (17 hosts)" in text and "### 1 worker (2 hosts)" in text
    assert "| deploy | wall s | x floor | commands/host max (builder / worker) | peak MiB | pyinfra CPU s | runs |" in text
    assert "| floor: 1 OpenSSH exec/host of the minimal probe | 2.50 | 1.00 | 1 | - | - | 15 |" in text
    assert "| survey exec: 1 OpenSSH exec/host of validation's survey | 2.00 | 2.40 | 1 | - | - | 5 |" in text
    assert "| (reference) 1 OpenSSH exec/host of `true` | 0.80 | - | 1 | - | - | 5 |" in text
    assert "| pyinfra floor: bench/pyinfra_floor.py, 1 fact/host: the probe | 3.00 | 1.20 | 1 (b 1 / w 1) | 50.0 | 0.60 | 5 |" in text
    assert "| cluster_distcc_validate.py | 3.00 | 1.20 | 1 (b 1 / w 1) | 57.2 | 1.50 | 5 |" in text
    # The pyinfra floor comes right after the execs, before the deploys.
    assert text.index("| survey exec:") < text.index("| pyinfra floor:") < text.index("| cluster_distcc_validate.py")
    assert "- REPORT pyinfra floor at 16 workers: 3.00 s = 1.20x floor; the 1.5x validation limit is 3.75 s" in text
    assert "| mode_switch.py from k3s mode | 13.50 | 6.75 | 12 (b 12 / w 10) | 61.0 | - | 5 (1 failed) |" in text
    assert "- TARGET mode switch with no changes at 16 workers <= 6 remote commands/host and <= 3x floor: MISSED" in text
    assert "- TARGET validation at 1 worker <= 1.5x floor: MISSED" in text
    assert "| 16 | 1 / 1 | 16 / 16 | 1.20 (2.08x) | 1.81 (2.59x) |" in text
    assert f"- worker {W}: 3 facts: facts.bundle.FactBundle x2, facts.host.HostResources x1" in text
    assert "## Anomalies\n\n- none" in text


def test_bench_compiles_what_a_deploy_imports_as_pip_would(tmp_path, monkeypatch):
    """pyinfra never writes bytecode; the benchmark writes it first, for the
    checkout's own modules, so that no timed run compiles them again."""
    from bench import run

    package = tmp_path / "facts"
    package.mkdir()
    (package / "thing.py").write_text("VALUE = 1\n")
    monkeypatch.setattr(run, "REPO", tmp_path)
    monkeypatch.setattr(run, "SOURCES", ("facts",))
    run.compile_sources()
    assert [p.name.split(".")[0] for p in (package / "__pycache__").iterdir()] == ["thing"]
