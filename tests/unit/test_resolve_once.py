"""The names are looked up once per survey (facts/host.py resolve_v4) and
read back by the names, route and reach sections (ADDRESSES_OF): run here
by a real sh, with a getent that answers what the real one answered on a
stock lab worker (stocklab-worker2, `getent ahostsv4 NAME`)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pyinfra.api import StringCommand

from facts.host import ADDRESSES_OF, names_lines, parse_names, resolve_v4

# Captured from stocklab-worker2: its own name on Pi OS's 127.0.1.1 line,
# the builder's from Docker's DNS; any other name exits 2 with no output.
# Given several names, getent prints their answers one after another, in
# the order given, and exits 2 if any had none (as on a lab builder:
# `getent ahostsv4 worker1.distcc.internal nosuch.distcc.internal
# worker2.distcc.internal` printed worker1's three lines, then worker2's).
GETENT = {
    "worker2": "127.0.1.1       STREAM worker2\n127.0.1.1       DGRAM  \n127.0.1.1       RAW    \n",
    "builder": "172.31.240.2    STREAM builder\n172.31.240.2    DGRAM  \n172.31.240.2    RAW    \n",
}


def run_sh(tmp_path: Path, command: StringCommand) -> tuple[list[str], list[str]]:
    """The command's output lines, and the getent calls it made."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "calls"
    answers = "".join(f"  {name}) printf '%s' '{text}';;\n" for name, text in GETENT.items())
    getent = bin_dir / "getent"
    getent.write_text(
        f'#!/bin/sh\necho "$*" >>"{calls}"\n[ "$1" = ahostsv4 ] || exit 1\nshift; rc=0\n'
        f'for k; do case "$k" in\n{answers}  *) rc=2;;\nesac; done\nexit $rc\n'
    )
    getent.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    proc = subprocess.run(["sh", "-c", command.get_raw_value()], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines(), calls.read_text().splitlines() if calls.exists() else []


def test_several_names_are_looked_up_by_one_getent(tmp_path):
    reader = StringCommand("for n in builder worker2; do", ADDRESSES_OF, 'printf "%s=[%s]\\n" "$n" "$x"; done')
    lines, calls = run_sh(tmp_path, StringCommand(resolve_v4(["builder", "worker2"]), reader))
    assert calls == ["ahostsv4 builder worker2"]
    assert lines == ["builder=[172.31.240.2 ]", "worker2=[127.0.1.1 ]"]


def test_one_name_is_looked_up_alone(tmp_path):
    lines, calls = run_sh(tmp_path, StringCommand(resolve_v4(["builder"]), names_lines(["builder"])))
    assert calls == ["ahostsv4 builder"]
    assert parse_names(lines)["resolves"] == {"builder": ["172.31.240.2"]}


def test_when_a_name_does_not_resolve_each_is_looked_up_alone_and_read_back_by_every_reader(tmp_path):
    # getent's answers to the three cannot be told apart, so each name is
    # looked up again, alone.
    names = ["worker2", "builder", "nosuch"]
    reader = StringCommand("for n in worker2 builder nosuch worker; do", ADDRESSES_OF, 'printf "%s=[%s]\\n" "$n" "$x"; done')
    lines, calls = run_sh(tmp_path, StringCommand(resolve_v4(names), reader, ";", reader))
    assert calls == ["ahostsv4 worker2 builder nosuch", "ahostsv4 worker2", "ahostsv4 builder", "ahostsv4 nosuch"]
    # One address however many socket types getent lists it with; a name
    # that does not resolve, and one never looked up (a prefix of a looked-up
    # name), read back as no address.
    expected = ["worker2=[127.0.1.1 ]", "builder=[172.31.240.2 ]", "nosuch=[]", "worker=[]"]
    assert lines == expected + expected


def test_host_names_reads_the_looked_up_addresses(tmp_path):
    names = ["builder", "worker2", "nosuch"]
    lines, calls = run_sh(tmp_path, StringCommand(resolve_v4(names), names_lines(names)))
    assert len(calls) == 4
    assert parse_names(lines)["resolves"] == {"builder": ["172.31.240.2"], "worker2": ["127.0.1.1"], "nosuch": []}
