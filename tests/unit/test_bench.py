"""The pure parts of the benchmark (bench/analysis.py): medians, the command
counter on pyinfra -vv output captured from the lab, the targets and the
markdown. No Docker, no timing."""

from __future__ import annotations

from bench.analysis import (
    evaluate_targets,
    median,
    parse_pyinfra_log,
    render_markdown,
    summarize_counts,
    summarize_samples,
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


def _medians(wall: float, x_floor: float, commands: int, noop_x: float, noop_wall: float) -> dict:
    return {
        "connect_only": {"n": 5, "wall_s": 0.8, "commands_max": 1},
        "floor": {"n": 15, "wall_s": wall / x_floor, "commands_max": 1},
        "validate": {"n": 5, "wall_s": wall, "x_floor": x_floor, "commands_max": commands,
                     "commands_builder": commands, "commands_worker_max": commands, "peak_mib": 57.25, "cpu_s": 1.5},
        "mode_switch_noop": {"n": 5, "wall_s": noop_wall, "x_floor": noop_x, "commands_max": 21,
                             "commands_builder": 17, "commands_worker_max": 21, "peak_mib": 60.0},
        "mode_switch_from_k3s": {"n": 5, "wall_s": noop_wall * 1.5, "x_floor": noop_x * 1.5, "commands_max": 23,
                                 "commands_builder": 22, "commands_worker_max": 23, "peak_mib": 61.0, "failed": 1},
    }


def test_summarize_samples():
    samples = [
        {"wall_s": 2.0, "x_floor": 1.2, "peak_kib": 1024 * 50, "cpu_s": 0.5, "command_summary": {"max": 1, "builder": 1, "worker_max": 1}},
        {"wall_s": 4.0, "x_floor": 1.4, "peak_kib": 1024 * 70, "command_summary": {"max": 1, "builder": 1, "worker_max": 1},
         "ok": False},
        {"wall_s": 3.0, "x_floor": 1.3, "peak_kib": None, "command_summary": {"max": 1, "builder": 1, "worker_max": 1}},
    ]
    summary = summarize_samples(samples)
    assert summary["wall_s"] == 3.0 and summary["x_floor"] == 1.3
    assert summary["peak_mib"] == 60.0 and summary["commands_max"] == 1 and summary["failed"] == 1
    assert summary["cpu_s"] == 0.5


def test_targets_met_and_missed():
    medians = {1: _medians(2.0, 2.0, 1, 3.0, 4.0), 16: _medians(3.0, 1.2, 1, 4.5, 9.0)}
    targets = {t["id"]: t for t in evaluate_targets(medians)}
    assert targets["validate-floor-commands"]["met"]
    assert "MET (1.20x floor: 0.30x under the limit of 1.50x" in targets["validate-floor-commands"]["text"]
    assert not targets["mode-switch-noop-floor"]["met"]
    assert "MISSED (4.50x floor: 1.50x (50%) over the limit of 3x)" in targets["mode-switch-noop-floor"]["text"]
    assert targets["growth-validate"]["met"]
    assert not targets["growth-mode_switch_noop"]["met"]
    assert "4.00 s -> 9.00 s = 2.25x" in targets["growth-mode_switch_noop"]["text"]


def test_targets_say_when_not_measured_at_16():
    targets = evaluate_targets({1: _medians(2, 2, 1, 3, 4), 4: _medians(2, 1.3, 4, 2, 5)})
    first = targets[0]
    assert not first["met"] and "4 commands/host: 1 (33%) over the limit of 3" in first["text"]
    assert "[measured at 4, the target is stated for 16]" in first["text"]


def test_markdown_tables_and_targets_are_ascii():
    medians = {1: _medians(2.0, 2.0, 1, 3.0, 4.0), 16: _medians(3.0, 1.2, 1, 4.5, 9.0)}
    results = {
        "machine": {"date": "2026-01-01T00:00:00Z", "cpu_model": "AMD EPYC", "nproc": 2},
        "config": {"sizes": [1, 16], "repeat": 5},
        "sizes": {str(size): {"medians": m} for size, m in medians.items()},
        "targets": evaluate_targets(medians),
        "breakdown": {"size": 16, "prepare": "2 / 3", "execute": "15 / 18",
                      "facts": {f"worker {W}": {"facts.systemd.UnitState": 6, "deb.DebPackages": 1}}},
        "anomalies": [],
    }
    text = render_markdown(results)
    assert text.isascii()
    assert "### 16 workers (17 hosts)" in text and "### 1 worker (2 hosts)" in text
    assert "| deploy | wall s | x floor | commands/host max (builder / worker) | peak MiB | pyinfra CPU s | runs |" in text
    assert "| cluster_distcc_validate.py | 3.00 | 1.20 | 1 (b 1 / w 1) | 57.2 | 1.50 | 5 |" in text
    assert "| mode_switch.py from k3s mode | 13.50 | 6.75 | 23 (b 22 / w 23) | 61.0 | - | 5 (1 failed) |" in text
    assert "| floor: 1 OpenSSH exec/host (survey) | 2.50 | 1.00 | 1 | - | - | 15 |" in text
    assert "| (reference) 1 OpenSSH exec/host of `true` | 0.80 | - | 1 | - | - | 5 |" in text
    assert "- TARGET mode switch with no changes at 16 workers <= 3x floor: MISSED" in text
    assert f"- worker {W}: 7 facts: facts.systemd.UnitState x6, deb.DebPackages x1" in text
    assert "## Anomalies\n\n- none" in text
