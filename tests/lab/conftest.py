"""Fixtures for the lab suite; the helpers themselves are in harness.py.

A module gets the lab in DISTCC BUILD MODE through `nodes`, unless it
defines its own `nodes` (e.g. a freshly recreated lab); `builder`, `workers`
and `worker` follow whichever `nodes` the module uses."""

import pytest

from tests.lab.harness import by_role, deploy, running_lab


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/lab/" in str(item.path):
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def lab():
    """The lab, running (started when it is not)."""
    return running_lab()


@pytest.fixture(scope="module")
def nodes(lab):
    """The running lab, switched into build mode."""
    run = deploy("mode_switch")
    assert run.returncode == 0, run.stderr[-3000:]
    return running_lab()


@pytest.fixture(scope="module")
def builder(nodes):
    return by_role(nodes, "builder")[0]


@pytest.fixture(scope="module")
def workers(nodes):
    return by_role(nodes, "worker")


@pytest.fixture(scope="module")
def worker(workers):
    return workers[0]
