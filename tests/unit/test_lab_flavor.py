"""The lab's flavors (LAB_FLAVOR, LAB_USER): what each node is named and
reached as, which image it runs, and the refusal of settings that cannot work.
No Docker: only what lab/settings.py and lab/images.py derive from the environment."""

import pytest

from lab import docker_lab, images, settings


@pytest.fixture
def env(monkeypatch):
    for key in ("LAB_FLAVOR", "LAB_USER", "LAB_ARCH", "LAB_WORKER_ARCHS", "LAB_SUITE", "LAB_WORKER_SUITES"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_default_flavor_is_the_fqdn_lab_reached_as_pi(env):
    nodes = docker_lab.wanted_nodes(2)
    assert [(n.name, n.user, n.flavor) for n in nodes] == [
        (f"{h}.{docker_lab.DOMAIN}", "pi", "fqdn") for h in ("builder", "worker1", "worker2")
    ]


def test_stock_nodes_have_short_names_and_the_first_user(env):
    env.setenv("LAB_FLAVOR", "stock")
    assert [(n.name, n.user) for n in docker_lab.wanted_nodes(1)] == [("builder", "ada"), ("worker1", "ada")]
    env.setenv("LAB_USER", "grace")
    assert {n.user for n in docker_lab.wanted_nodes(1)} == {"grace"}


def test_the_fqdn_image_tag_does_not_depend_on_the_stock_recipe(env):
    """The fqdn image's tag is its own recipe's digest and its release."""
    fqdn, stock = docker_lab.image_tag(), docker_lab.image_tag(flavor="stock")
    digest = images._digest(images._recipe_files(docker_lab.native_arch()))
    assert fqdn == f"{settings.IMAGE_NAME}:{digest}-trixie"
    assert stock.endswith("-stock") and stock.split(":")[1].split("-")[0] != fqdn.split(":")[1]
    assert not any(p.parent == settings.STOCK_DIR for p in images._recipe_files(docker_lab.native_arch()))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"LAB_FLAVOR": "raspbian"}, "LAB_FLAVOR names the flavor 'raspbian'; the lab has fqdn and stock."),
        ({"LAB_USER": "ada"}, "LAB_USER=ada applies to LAB_FLAVOR=stock only; the fqdn lab's user is pi."),
        ({"LAB_FLAVOR": "stock", "LAB_USER": "root"}, "LAB_USER='root' cannot be the nodes' first user"),
        ({"LAB_FLAVOR": "stock", "LAB_USER": "Ada Lovelace"}, "LAB_USER='Ada Lovelace' cannot be the nodes' first user"),
    ],
)
def test_settings_that_cannot_work_are_refused_with_the_fix(env, settings, message):
    for key, value in settings.items():
        env.setenv(key, value)
    with pytest.raises(docker_lab.LabError) as error:
        docker_lab.wanted_nodes(1)
    assert str(error.value).startswith(message), str(error.value)
    assert "Set " in str(error.value)
