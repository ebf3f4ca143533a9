"""What the unit tests share (no host and no Docker): pyinfra hosts and
inventories faked as far as settings_for() and check_inventory() look.
Validation run on surveys captured from the lab is in tests/unit/captured.py.

Test modules import from here, never from one another
(tests/unit/test_test_modules.py)."""

from __future__ import annotations

from pathlib import Path

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
