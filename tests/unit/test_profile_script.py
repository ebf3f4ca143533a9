"""templates/distcc-profile.sh.j2 run by sh: the build user's environment
it gives, compared with what validation expects of it (B-PUMP derives
DISTCC_PUMP_HOSTS in Python from the same host list)."""

from __future__ import annotations

import getpass
import json
import subprocess
from pathlib import Path

import jinja2

from deploys.library.builder import PROFILE_TEMPLATE, profile_context, pump_host_entry
from deploys.library.settings import settings_for
from tests.unit.harness import FakeHost

REPO = Path(__file__).resolve().parents[2]
# The lab's builder with distcc_ccache and distcc_pump, as captured.
CASE = json.loads((REPO / "tests" / "unit" / "surveys" / "ccache-pump.json").read_text())
BUILDER = CASE["inventory"]["builder"][0]


def login_env(home: Path, ccache: bool, pump: bool) -> dict[str, str]:
    """The environment a login of the build user gets from the rendered
    profile script (HOME in a temporary directory)."""
    data = {"distcc_build_user": getpass.getuser(), "distcc_ccache": ccache, "distcc_pump": pump}
    context = profile_context(settings_for(FakeHost(BUILDER, data)))
    script = jinja2.Environment(loader=jinja2.FileSystemLoader(REPO / "templates"), keep_trailing_newline=True) \
        .get_template(PROFILE_TEMPLATE).render(**context)
    (home / "profile.sh").write_text(script)
    out = subprocess.run(["sh", "-c", f'HOME="{home}"; . "{home}/profile.sh"; env'], capture_output=True, text=True,
                         check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def captured_hosts() -> list[str]:
    lines = CASE["outputs"][BUILDER]
    return [line.split(" ", 1)[1] for line in lines if line.startswith("host ")]


def test_pump_hosts_from_the_shell_are_what_validation_wants(tmp_path):
    hosts = captured_hosts()
    assert hosts, "the captured survey lists the builder's hosts"
    (tmp_path / ".distcc").mkdir()
    (tmp_path / ".distcc" / "hosts").write_text("# the farm's workers\n" + "\n".join(hosts) + "\n")
    env = login_env(tmp_path, ccache=False, pump=True)
    assert env["DISTCC_PUMP_HOSTS"] == " ".join(pump_host_entry(h) for h in hosts)
    # Twice each worker's slots, with the pump options.
    assert env["DISTCC_PUMP_HOSTS"].split()[0].endswith("/4,cpp,lzo"), env["DISTCC_PUMP_HOSTS"]
    # And as the lab's builder had it when captured.
    captured = next(line for line in CASE["outputs"][BUILDER] if line.startswith("env DISTCC_PUMP_HOSTS="))
    assert captured == f"env DISTCC_PUMP_HOSTS={env['DISTCC_PUMP_HOSTS']}"


def test_a_host_entry_the_profile_cannot_read_is_kept_as_it_is(tmp_path):
    (tmp_path / ".distcc").mkdir()
    (tmp_path / ".distcc" / "hosts").write_text("w1:3632/2\nw2:3632/x\nw3\n")
    env = login_env(tmp_path, ccache=False, pump=True)
    assert env["DISTCC_PUMP_HOSTS"] == "w1:3632/4,cpp,lzo w2:3632/x,cpp,lzo w3,cpp,lzo"
    assert [pump_host_entry(h) for h in ("w1:3632/2", "w2:3632/x", "w3")] == env["DISTCC_PUMP_HOSTS"].split()


def test_ccache_comes_first_with_distcc_as_its_prefix(tmp_path):
    (tmp_path / ".distcc").mkdir()
    (tmp_path / ".distcc" / "hosts").write_text("w1:3632/2\n")
    env = login_env(tmp_path, ccache=True, pump=False)
    assert env["PATH"].split(":")[0] == "/usr/lib/ccache" and "/usr/lib/distcc" not in env["PATH"].split(":")
    assert {k: env[k] for k in ("CCACHE_PREFIX", "CCACHE_DEPEND", "CCACHE_NOCOMPRESS", "CCACHE_MAXSIZE")} == {
        "CCACHE_PREFIX": "distcc", "CCACHE_DEPEND": "1", "CCACHE_NOCOMPRESS": "1", "CCACHE_MAXSIZE": "2Gi"}
    assert env["CCACHE_DIR"] == f"{tmp_path}/.ccache"
    assert "DISTCC_PUMP_HOSTS" not in env
