"""Fixtures for the lab suite; the helpers themselves are in harness.py."""

import pytest

from tests.lab.harness import running_lab


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/lab/" in str(item.path):
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def lab():
    """The lab, running (started when it is not)."""
    return running_lab()
