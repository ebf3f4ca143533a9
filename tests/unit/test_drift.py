"""The worker's distcc unit as changed by hand, judged from UnitSources
captured on real lab workers: the mode switch takes over only a unit whose
running is decided by this package's override."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploys.library.builder import _bypasses_masquerade, login_drift
from deploys.library.install import unit_drift

FIXTURES = Path(__file__).parent / "facts" / "systemd.UnitSources"
OWN = "/etc/systemd/system/distcc.service.d/override.conf"


def sources(case: str) -> dict:
    return json.loads((FIXTURES / f"{case}.json").read_text())["fact"]


# bookworm's unit generated from /etc/init.d/distcc, and trixie's own (trixie_*).
@pytest.mark.parametrize(
    "case", ["build_mode", "builder_build_mode", "trixie_worker_build_mode", "trixie_builder_build_mode"],
)
def test_a_unit_of_the_package_and_systemd_alone_is_taken_over(case):
    assert unit_drift(sources(case), OWN) is None


def test_a_foreign_drop_in_that_changes_the_run_is_named_with_its_line():
    problem = unit_drift(sources("foreign_dropin"), OWN)
    assert "zz-local.conf line 2: Environment=DISTCC_CMDLIST=/etc/distcc/cmdlist" in problem
    # Nice= and a comment-only local.conf change nothing that matters.
    assert "Nice" not in problem and "local.conf line" not in problem.replace("zz-local.conf line", "")
    assert "Fix: remove those lines or files" in problem and problem.isascii()


def test_a_masked_unit_is_refused_with_unmask_as_the_fix():
    problem = unit_drift(sources("masked"), OWN)
    assert problem.startswith("distcc.service is masked")
    assert "run 'systemctl unmask distcc.service'" in problem


def test_a_hand_written_unit_file_is_named():
    problem = unit_drift(sources("hand_written_unit"), OWN)
    assert "/etc/systemd/system/distcc.service line 4: ExecStartPre=/bin/true" in problem
    assert "systemctl revert distcc.service" in problem


LOGIN_FIXTURES = Path(__file__).parent / "facts" / "users.LoginEnvironment"


def login(case: str) -> dict:
    return json.loads((LOGIN_FIXTURES / f"{case}.json").read_text())["fact"]


@pytest.mark.parametrize("case", ["pi_farm_profile", "pi_local_bin_first", "pi_default", "pi_distcc_installed"])
def test_a_login_environment_that_keeps_compiles_on_the_farm_passes(case):
    """pi_local_bin_first: Debian's ~/.profile put ~/.local/bin before
    /usr/lib/distcc, but every compiler name still runs the masquerade."""
    assert login_drift(login(case)) is None


def test_a_compiler_in_the_users_own_bin_is_named():
    problem = login_drift(login("pi_gcc_shadowed"))
    assert "/home/pi/.local/bin/gcc comes before /usr/lib/distcc on the login PATH, so `gcc` compiles locally" in problem
    assert "g++" not in problem


def test_overrides_in_shell_files_are_named_with_their_lines():
    problem = login_drift(login("pi_env_overrides"))
    assert "/home/pi/.profile line 28: export DISTCC_HOSTS=localhost (replaces the farm's host list" in problem
    assert "/home/pi/.profile line 29: export CC=clang (runs that compiler directly" in problem
    assert problem.isascii()


@pytest.mark.parametrize(
    "value, bypasses",
    [("gcc", False), ("distcc gcc", False), ("/usr/lib/distcc/gcc", False), ("aarch64-linux-gnu-gcc", False),
     ("/usr/bin/gcc", True), ("clang", True), ("ccache gcc", True)],
)
def test_cc_values_that_bypass_the_masquerade(value, bypasses):
    assert _bypasses_masquerade(value) is bypasses
