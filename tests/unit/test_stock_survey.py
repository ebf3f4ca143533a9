"""Validation on a survey captured from a lab of stock Raspberry Pi OS Lite
nodes (tests/unit/surveys/stock-healthy.json, `python3 -m lab.capture_surveys
stock-healthy` on a LAB_FLAVOR=stock lab in build mode): short hostnames on
Debian's 127.0.1.1 line, peers resolved by the network's DNS, the first user
ada as SSH and build user, whose Debian ~/.profile puts ~/.local/bin first on
its login PATH. Every check passes there; no host is needed here."""

from __future__ import annotations

from deploys.library.validation.model import PASS
from tests.unit.harness import evaluate_case, load

CASE = "stock-healthy"


def evaluate() -> dict:
    return evaluate_case(CASE)


def test_the_fixture_is_a_stock_lab_reached_as_its_first_user():
    fixture = load(CASE)
    assert fixture["inventory"] == {"builder": ["builder"], "workers": ["worker1", "worker2"]}
    assert {data["ssh_user"] for data in fixture["host_data"].values()} == {"ada"}
    for host, lines in fixture["outputs"].items():
        assert f"hostname {host}" in lines and f"fqdn {host}" in lines, host
    assert "PATH /home/ada/.local/bin:/usr/lib/distcc:/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games" in (
        fixture["outputs"]["builder"])


def test_every_check_passes_on_stock_nodes():
    results = evaluate()
    failing = {(host, c.id): (c.result, c.detail) for host, checks in results.items() for c in checks if c.result != PASS}
    assert failing == {}
    assert sum(len(checks) for checks in results.values()) == 50


def test_names_pass_without_a_domain():
    for host, checks in evaluate().items():
        names = next(c for c in checks if c.id == "H-NAMES")
        wanted = "resolves all 2 worker names" if host == "builder" else "resolves the builder's name builder"
        assert names.detail == f"{host} (no domain), {wanted}", names.detail


def test_the_masquerade_passes_behind_local_bin():
    path = next(c for c in evaluate()["builder"] if c.id == "B-PATH")
    assert path.detail == "c++, cc, g++, gcc run /usr/lib/distcc (after /home/ada/.local/bin on ada's login PATH)"
