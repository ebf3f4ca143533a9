"""The lab's Debian releases (LAB_SUITE, LAB_WORKER_SUITES): which release
each node runs, the image it is made from, and the refusal of a release the
lab cannot make. No Docker: only what lab/settings.py and lab/images.py derive from the
environment."""

import pytest

from lab import docker_lab


@pytest.fixture
def env(monkeypatch):
    for key in ("LAB_FLAVOR", "LAB_USER", "LAB_ARCH", "LAB_WORKER_ARCHS", "LAB_SUITE", "LAB_WORKER_SUITES", "LAB_WORKERS"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_nodes_run_trixie_unless_told_otherwise(env):
    assert [n.suite for n in docker_lab.wanted_nodes(2)] == ["trixie"] * 3
    env.setenv("LAB_SUITE", "bookworm")
    assert [n.suite for n in docker_lab.wanted_nodes(2)] == ["bookworm"] * 3


def test_workers_can_run_another_release_than_the_builder(env):
    env.setenv("LAB_SUITE", "bookworm")
    env.setenv("LAB_WORKER_SUITES", "bookworm,trixie")
    nodes = docker_lab.wanted_nodes(docker_lab.default_workers())
    assert [(n.hostname, n.suite) for n in nodes] == [("builder", "bookworm"), ("worker1", "bookworm"), ("worker2", "trixie")]
    # The workers not listed take LAB_SUITE.
    assert [n.suite for n in docker_lab.wanted_nodes(3)] == ["bookworm", "bookworm", "trixie", "bookworm"]


def test_each_release_has_its_own_images(env):
    trixie, bookworm = docker_lab.image_tag(suite="trixie"), docker_lab.image_tag(suite="bookworm")
    assert trixie.endswith("-trixie") and bookworm.endswith("-bookworm")
    assert trixie.removesuffix("-trixie") == bookworm.removesuffix("-bookworm")
    assert docker_lab.base_image_tag(suite="bookworm").endswith("-bookworm")
    assert docker_lab.image_tag("arm64", "stock", "bookworm").endswith("-bookworm-arm64-stock")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"LAB_SUITE": "sid"}, "LAB_SUITE names the release 'sid'; the lab runs trixie and bookworm"),
        ({"LAB_WORKER_SUITES": "trixie,bullseye"}, "LAB_WORKER_SUITES names the release 'bullseye'"),
        ({"LAB_WORKER_SUITES": "trixie,trixie,bookworm", "LAB_WORKERS": "2"},
         "LAB_WORKER_SUITES names 3 workers .* but the lab has 2"),
    ],
)
def test_a_release_the_lab_cannot_make_is_refused(env, settings, message):
    for key, value in settings.items():
        env.setenv(key, value)
    with pytest.raises(docker_lab.LabError, match=message):
        docker_lab.wanted_nodes(docker_lab.default_workers())
