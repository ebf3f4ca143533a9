"""operations/_observed.py and facts/bundle.py: planned facts read in one
round trip per phase while the host does not change, parsed from a bundle
captured on a real lab worker exactly as each fact parses its own output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.operation import OperationMeta
from pyinfra.api.state import StateOperationHostData
from pyinfra.connectors.util import CommandOutput
from pyinfra.context import ctx_host, ctx_state

from facts.bundle import FactBundle, distinct_commands, fact_class, parse_part
from facts.distcc import Cc1Processes, DistccProcesses
from facts.systemd import UnitState
from operations._observed import observed, plan_reads

FIXTURES = Path(__file__).parent / "facts" / "bundle.FactBundle"


def captured(case: str) -> dict:
    return json.loads((FIXTURES / f"{case}.json").read_text())


def parts_of(fixture: dict) -> list:
    return [(fact_class(path), kwargs) for path, kwargs in fixture["kwargs"]["parts"]]


def section_lines(fixture: dict, cls: type, kwargs: dict) -> list[str]:
    """The output the fact's own command printed inside the bundle."""
    parts = parts_of(fixture)
    _, index = distinct_commands(parts)
    number = index[parts.index((cls, kwargs))]
    return FactBundle().process(fixture["output"])[number]["lines"]


@pytest.fixture()
def worker_run(monkeypatch):
    """A real State with one host whose remote commands answer from the
    captured bundle; yields (state, host, calls)."""
    fixture = captured("worker_build_mode")
    inventory = Inventory((["worker1"], {}))
    state = State(inventory, Config())
    host = inventory.get_host("worker1")
    calls: list[tuple[str, dict]] = []

    captured_commands, _ = distinct_commands(parts_of(fixture))
    captured_sections = FactBundle().process(fixture["output"])
    by_text = {c.get_raw_value(): captured_sections[n] for n, c in enumerate(captured_commands)}

    def get_fact(cls, **kwargs):
        calls.append((cls.__name__, kwargs))
        assert cls is FactBundle, f"{cls.__name__} read alone"
        # The sections the host would print for the parts asked for: the
        # captured ones where the captured bundle ran the same command.
        asked, _ = distinct_commands([(fact_class(path), kw) for path, kw in kwargs["parts"]])
        return [by_text.get(c.get_raw_value()) for c in asked]

    monkeypatch.setattr(host, "get_fact", get_fact)
    with ctx_state.use(state), ctx_host.use(host):
        plan_reads(host, parts_of(fixture))
        yield state, host, calls, fixture


def complete_op(state, host, changed: bool) -> None:
    """An operation on host that completed, with or without commands."""
    meta = OperationMeta(f"op{len(state.ops[host])}", is_change=changed)
    meta.set_complete(True, ["true"] if changed else [], CommandOutput([]))
    state.ops[host][meta._hash] = StateOperationHostData(lambda: iter(()), {}, meta)


def test_planned_facts_are_read_once_and_parsed_by_their_own_facts(worker_run):
    state, host, calls, fixture = worker_run
    unit = observed(UnitState, unit="distcc.service")
    processes = observed(DistccProcesses)
    cc1 = observed(Cc1Processes)
    assert len(calls) == 1
    assert unit == UnitState().process(section_lines(fixture, UnitState, {"unit": "distcc.service"}))
    assert unit["active"] == "active" and unit["main_pid"] > 0
    # One ps for both: the same instant, parsed by each fact.
    ps = section_lines(fixture, DistccProcesses, {})
    assert ps == section_lines(fixture, Cc1Processes, {})
    assert processes == DistccProcesses().process(ps) and cc1 == Cc1Processes().process(ps)
    assert [p["pid"] for p in processes["distccd"]].count(unit["main_pid"]) == 1


def test_a_change_on_the_host_makes_the_next_read_fresh(worker_run):
    state, host, calls, _ = worker_run
    observed(UnitState, unit="distcc.service")
    complete_op(state, host, changed=False)
    observed(UnitState, unit="distcc.service")
    assert len(calls) == 1, "an operation that changed nothing keeps the snapshot"
    complete_op(state, host, changed=True)
    observed(UnitState, unit="distcc.service")
    assert len(calls) == 2, "an operation that ran a command makes the next read go to the host"


def test_execution_reads_again_what_loading_read(worker_run):
    state, host, calls, _ = worker_run
    observed(UnitState, unit="distcc.service")
    state.is_executing = True
    observed(UnitState, unit="distcc.service")
    observed(DistccProcesses)
    assert len(calls) == 2


def test_an_unplanned_fact_is_read_alone(worker_run, monkeypatch):
    state, host, calls, _ = worker_run
    with pytest.raises(AssertionError, match="UnitState read alone"):
        observed(UnitState, unit="ssh.service")


def test_parts_planned_later_are_read_in_one_more_round_trip(worker_run):
    state, host, calls, fixture = worker_run
    observed(UnitState, unit="distcc.service")
    plan_reads(host, [(UnitState, {"unit": "ssh.service"})])
    # The captured bundle has no section for it: the value is not taken
    # from another part's output; the fact is read alone.
    with pytest.raises(AssertionError, match="UnitState read alone"):
        observed(UnitState, unit="ssh.service")
    assert [name for name, _ in calls] == ["FactBundle", "FactBundle", "UnitState"]
    assert calls[1][1]["parts"] == [["facts.systemd.UnitState", {"unit": "ssh.service"}]]


def test_a_failed_or_missing_section_is_not_read():
    lines = captured("worker_build_mode")["output"]
    sections = FactBundle().process(lines)
    assert all(s is not None and s["status"] == 0 for s in sections)
    failed = dict(sections[0], status=1)
    assert parse_part(UnitState, failed) is not parse_part(UnitState, sections[0])
    from facts.bundle import NOT_READ

    assert parse_part(UnitState, failed) is NOT_READ
    assert parse_part(UnitState, None) is NOT_READ
    # A cut-off output (the host died mid-bundle) loses the unfinished section.
    cut = lines[: lines.index(next(line for line in lines if line.startswith("##bundle-end 2")))]
    assert FactBundle().process(cut)[2]["status"] is None


def test_the_builder_bundle_parses_a_stopped_distcc():
    fixture = captured("builder_no_distccd")
    parts = parts_of(fixture)
    sections = FactBundle().process(fixture["output"])
    _, index = distinct_commands(parts)
    values = {cls.__name__ + str(kw): parse_part(cls, sections[n]) for (cls, kw), n in zip(parts, index, strict=True)}
    assert values["DistccProcesses{}"]["distccd"] == []
    assert values["UnitState{'unit': 'distcc.service'}"]["active"] in ("inactive", "failed")
    assert values["DistccdListening{'port': 3632}"] == []


def test_each_phase_reads_what_its_readers_need(worker_run):
    """With -y pyinfra predicts nothing while loading: the load-time bundle
    holds only what the deploy's own code reads, the execution's only what
    the operations read."""
    from facts.network import PeerRoute
    from operations._observed import BODY, BOTH

    state, host, calls, fixture = worker_run
    plan_reads(host, [(UnitState, {"unit": "distcc.service"}, BOTH), (PeerRoute, {"peer": "builder"}, BODY)])
    state.check_for_changes = False

    def asked(call) -> set[str]:
        return {path for path, _ in call[1]["parts"]}

    observed(UnitState, unit="distcc.service")
    assert asked(calls[-1]) == {"facts.systemd.UnitState", "facts.network.PeerRoute"}
    state.is_executing = True
    observed(DistccProcesses)
    assert "facts.network.PeerRoute" not in asked(calls[-1])
    assert {"facts.systemd.UnitState", "facts.distcc.DistccProcesses", "facts.distcc.Cc1Processes"} <= asked(calls[-1])
    assert len(calls) == 2


def test_loading_reads_everything_when_pyinfra_predicts_changes(worker_run):
    from facts.network import PeerRoute
    from operations._observed import BODY

    state, host, calls, fixture = worker_run
    plan_reads(host, [(PeerRoute, {"peer": "builder"}, BODY)])
    assert state.should_check_for_changes()
    observed(DistccProcesses)
    assert "facts.network.PeerRoute" in {path for path, _ in calls[-1][1]["parts"]}
    assert "facts.distcc.DistccProcesses" in {path for path, _ in calls[-1][1]["parts"]}


def test_run_caches_belong_to_the_state_behind_pyinfras_proxy():
    """`from pyinfra import state` is one proxy object for every State: a
    cache keyed by it (or by its id) would carry one run's values into the
    next run of the same process."""
    from pyinfra import state as proxy

    from deploys.library.cluster import run_cache

    first, second = (State(Inventory(([name], {})), Config()) for name in ("a", "b"))
    with ctx_state.use(first):
        run_cache(proxy, "smoke test")["marker"] = "first run"
    with ctx_state.use(second):
        assert run_cache(proxy, "smoke test") == {}
    with ctx_state.use(first):
        assert run_cache(proxy, "smoke test") == {"marker": "first run"}
