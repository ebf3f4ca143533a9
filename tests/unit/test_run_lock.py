"""The cluster's run lock (deploys/library/run_lock.py): its commands run for
real in sh against a scratch directory, many takers at once; the owner
record; when a holder is known to be gone; and that pyinfra gives the lock
back on disconnect. The lab test of two mode switches started together is
tests/lab/test_e_safety.py::test_two_mode_switches_at_once_one_runs_the_other_is_refused."""

from __future__ import annotations

import os
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from deploys.library import run_lock
from deploys.library.run_lock import Owner, gone, release_command, take_command


def owner(run: str = "abc", **changes) -> Owner:
    record = Owner(
        run=run, controller="laptop", boot="b00t", pid=4242, pid_start="777", user="ada", deploy="mode_switch",
        since="2026-12-06T22:10:03Z",
    )
    return replace(record, **changes)


def sh(command) -> list[str]:
    proc = subprocess.run(["sh", "-c", command.get_raw_value()], capture_output=True, text=True, check=True)
    return proc.stdout.splitlines()


def test_the_owner_record_is_one_line_read_back_as_written():
    record = owner()
    assert Owner.parse(record.line()) == record
    assert record.line().isascii() and "\n" not in record.line()
    assert Owner.parse("") is None and Owner.parse("run=x pid=notanumber") is None
    assert record.described() == "mode_switch run by ada@laptop (pid 4242), holding it since 2026-12-06T22:10:03Z"


def test_one_taker_of_many_at_once_gets_the_lock_and_the_others_see_it(tmp_path):
    lock = str(tmp_path / "lock")
    takers = [owner(run=f"run{i}") for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda o: sh(take_command(o, lock)), takers))
    winners = [o for o, lines in zip(takers, answers, strict=True) if lines[:1] == ["taken"]]
    assert len(winners) == 1
    held = (tmp_path / "lock" / "owner").read_text().strip()
    assert held == winners[0].line()
    for lines in answers:
        assert lines == ["taken"] or lines == ["held", held]
    # Nothing half-made is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock"]


def test_release_removes_only_the_runs_own_lock(tmp_path):
    lock = str(tmp_path / "lock")
    mine, theirs = owner("mine"), owner("theirs")
    assert sh(take_command(mine, lock)) == ["taken"]
    sh(release_command(theirs, lock))
    assert (tmp_path / "lock" / "owner").read_text().strip() == mine.line()
    sh(release_command(mine, lock))
    assert not (tmp_path / "lock").exists()
    assert sh(take_command(theirs, lock)) == ["taken"]


def test_a_holder_is_gone_only_when_known_dead_on_this_machine():
    me = os.getpid()
    boot = run_lock._read("/proc/sys/kernel/random/boot_id")
    here = owner(controller=socket.gethostname(), boot=boot, pid=me, pid_start=run_lock._pid_start(me))
    assert not gone(here)
    # The same pid, started at another time: reused by another process.
    assert gone(replace(here, pid_start="1"))
    # No such process.
    assert gone(replace(here, pid=2**22 + 1))
    # Another boot of this machine: its processes are all gone, but the
    # lock (in /run) would be too, so a record of another boot is not ours.
    assert not gone(replace(here, boot="other-boot", pid=2**22 + 1))
    # Another machine: its processes cannot be seen from here.
    assert not gone(replace(here, controller="another-machine", pid=2**22 + 1))


def test_start_run_makes_hosts_give_the_lock_back_as_they_disconnect():
    from pyinfra.api.host import Host

    from deploys.library import start_run

    start_run()
    start_run()
    # Wrapped once, however often a run's files call it.
    assert getattr(Host.disconnect, run_lock._MARK, False)
    assert not getattr(Host.disconnect.__wrapped__, run_lock._MARK, False)
