"""What the unit tests share (no host and no Docker): pyinfra hosts and
inventories faked as far as settings_for() and check_inventory() look, and
validation run on a survey captured from the lab (tests/unit/surveys/).

Test modules import from here, never from one another
(tests/unit/test_test_imports.py)."""

from __future__ import annotations

import json
from pathlib import Path

from pyinfra.api import Inventory

from deploys.library.validation.checks import evaluate_cluster
from deploys.library.validation.model import Check, Cluster
from deploys.library.validation.survey import NOT_CONNECTED
from facts.compiler import GccPackage
from facts.survey import parse_surveys

WORKER = "worker1.distcc.internal"
SURVEYS = Path(__file__).parent / "surveys"


# --- fake hosts: a name and host data, as pyinfra's have --------------------------


class FakeData:
    def __init__(self, values: dict) -> None:
        self.values = values

    def dict(self) -> dict:
        return dict(self.values)


class FakeHost:
    def __init__(self, name: str, data: dict | None = None) -> None:
        self.name = name
        self.data = FakeData(data or {})


class FakeInventory:
    def __init__(self, **groups: list[FakeHost]) -> None:
        self.groups = groups

    def get_group(self, name: str, default=None):
        return self.groups.get(name, default)


# --- validation on captured surveys ---------------------------------------------


def load(case: str) -> dict:
    return json.loads((SURVEYS / f"{case}.json").read_text())


def evaluate_case(case: str) -> dict[str, list[Check]]:
    """Every check on every host of the captured case, the inventory rebuilt
    in the captured shape with the captured host data."""
    fixture = load(case)
    shape = fixture["inventory"]
    names = [(name, fixture["host_data"][name]) for name in shape["builder"] + shape["workers"]]
    inventory = Inventory((names, {}), builder=(shape["builder"], {}), workers=(shape["workers"], {}))
    surveys = parse_surveys(fixture["outputs"])
    unsurveyed = {n: NOT_CONNECTED for n, lines in fixture["outputs"].items() if lines is None}
    # Validation's second command, as read_gcc_packages puts it in.
    for name, lines in fixture.get("gcc_package", {}).items():
        surveys[name]["gcc_package"] = GccPackage().process(lines)
    return evaluate_cluster(Cluster.from_inventory(inventory, surveys, unsurveyed))
