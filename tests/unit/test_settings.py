"""Bad input is refused by settings_for() and check_inventory() with one
paragraph that names the host, the setting and the fix. No host and no
Docker here: fake hosts carry a name and host data, as pyinfra's do.

docs/safety.md names these tests; the lab suite (tests/lab/test_e_safety.py)
proves on real hosts that such a refusal changes nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pyinfra.api.exceptions import PyinfraError

from deploys.library.cluster import check_inventory
from deploys.library.settings import SETTINGS, SettingsError, compiler_package, jobs_for, settings_for, tmpfs_size_for
from deploys.library.worker import loopback_derivation
from tests.refusals import assert_refusal
from tests.unit.harness import WORKER, FakeHost, FakeInventory


def refusal(data: dict, name: str = WORKER) -> str:
    """The refusal's paragraph, after checking that pyinfra prints it within
    100 columns (on the lines after its own "--> pyinfra error ...:")."""
    with pytest.raises(SettingsError) as raised:
        settings_for(FakeHost(name, data))
    assert max(len(line) for line in str(raised.value).splitlines()) <= 100, str(raised.value)
    return raised.value.paragraph


# --- defaults ------------------------------------------------------------------


def test_no_data_gives_the_documented_defaults():
    settings = settings_for(FakeHost(WORKER))
    assert settings.port == SETTINGS["distcc_port"].default == 3632
    assert settings.allow is None and settings.listen is None and settings.builder_address is None
    # None: sized from the builder's memory when it is known (tmpfs_size_for).
    assert settings.tmpfs_path == "/tmp/kernel-build" and settings.tmpfs_size is None
    assert settings.tmpfs_mode == "1777" and settings.discard_tmpfs is False
    assert settings.allow_open_ok is False and settings.apt_lock_wait == 120
    # Narrow tables unless asked: one line per host fits a 100-column terminal.
    assert settings.wide_tables is False


def test_a_refusal_is_a_pyinfra_error_so_the_cli_exits_non_zero():
    assert issubclass(SettingsError, PyinfraError)


def test_other_tools_keys_are_left_alone():
    data = {
        "ssh_user": "pi", "ssh_hostname": "10.0.0.11", "_sudo": True, "k3s_version": "v1.29.4+k3s1",
        "district": "north", "discord_token": "x", "tmpfs_size": "1G",
    }
    assert settings_for(FakeHost(WORKER, data)).tmpfs_size is None


# --- unknown keys ----------------------------------------------------------------


@pytest.mark.parametrize(
    "key, meant",
    [
        ("distcc_tmpfs_szie", "distcc_tmpfs_size"),
        ("distcc_alow", "distcc_allow"),
        ("DISTCC_TMPFS_SIZE", "distcc_tmpfs_size"),
        ("distcc-tmpfs-size", "distcc_tmpfs_size"),
        ("distc_tmpfs_size", "distcc_tmpfs_size"),
        ("distccd_jobs", "distcc_jobs"),
        ("dsitcc_nice", "distcc_nice"),
    ],
)
def test_misspelt_setting_is_refused_with_the_key_it_resembles(key, meant):
    message = refusal({key: "1G"})
    assert_refusal(message, WORKER, key, f"remove or rename it (did you mean {meant}?)")
    assert "is not a setting of this package" in message


def test_unknown_setting_with_no_near_match_points_at_the_list():
    message = refusal({"distcc_frobnicate": 1})
    assert "see deploys/library/settings.py for every setting" in message


def test_non_ascii_key_is_printed_escaped():
    message = refusal({"distcc_tmpfs_siz\u00e9": "1G"})
    assert message.startswith("host worker1.distcc.internal: setting 'distcc_tmpfs_siz\\xe9' = ")
    assert message.isascii()


# --- distcc_allow ----------------------------------------------------------------


@pytest.mark.parametrize(
    "value, why",
    [
        ("10.0.0.1/33", "'33' is not a valid netmask"),
        ("10.0.0.300/32", "not a valid IPv4 CIDR"),
        ("10.0.0.1/24", "has host bits set"),
        (["10.0.0.10/32", "builder"], "holds 'builder', which is not a valid IPv4 CIDR"),
    ],
)
def test_invalid_cidr_in_allow_is_refused(value, why):
    message = refusal({"distcc_allow": value})
    assert_refusal(message, WORKER, "distcc_allow", "write each entry as ADDRESS/PREFIX with the host bits zero")
    assert why in message


@pytest.mark.parametrize("value", [[], "", 42, {"net": "10.0.0.10/32"}])
def test_allow_that_is_not_a_list_is_refused(value):
    message = refusal({"distcc_allow": value})
    assert_refusal(message, WORKER, "distcc_allow", "set distcc_allow = ['10.0.0.10/32']")
    assert "is not a list of CIDRs" in message


@pytest.mark.parametrize("value", ["0.0.0.0/0", ["10.0.0.10/32", "0.0.0.0/0"], ["0.0.0.0/1", "128.0.0.0/1"]])
def test_allow_open_to_everyone_is_refused(value):
    message = refusal({"distcc_allow": value})
    assert_refusal(message, WORKER, "distcc_allow", "list only the builder")
    assert "opens distccd to every address" in message
    assert "set distcc_allow_open_ok = True" in message


def test_allow_open_to_everyone_is_accepted_with_allow_open_ok():
    settings = settings_for(FakeHost(WORKER, {"distcc_allow": "0.0.0.0/0", "distcc_allow_open_ok": True}))
    assert settings.allow == ("0.0.0.0/0",) and settings.allow_open_ok


def test_allow_open_ok_must_be_a_real_boolean():
    message = refusal({"distcc_allow": "0.0.0.0/0", "distcc_allow_open_ok": "yes"})
    assert_refusal(message, WORKER, "distcc_allow_open_ok", "set distcc_allow_open_ok = True or distcc_allow_open_ok = False")
    assert "is not True or False" in message


def test_allow_string_may_list_several_networks():
    settings = settings_for(FakeHost(WORKER, {"distcc_allow": "10.0.0.10/32, 10.0.1.0/24"}))
    assert settings.allow == ("10.0.0.10/32", "10.0.1.0/24")


# --- distcc_listen and distcc_builder_address --------------------------------------


@pytest.mark.parametrize(
    "value, why",
    [
        ("10.0.0.300", "is not an IPv4 address"),
        ("worker1", "is not an IPv4 address"),
        ("10.0.0.11/32", "is not an IPv4 address"),
        ("0.0.0.0", "is the any-address (every interface)"),
        ("127.0.0.1", "is a loopback address"),
        ("224.0.0.1", "is a multicast or broadcast address"),
        ("255.255.255.255", "is a multicast or broadcast address"),
    ],
)
def test_invalid_listen_address_is_refused(value, why):
    message = refusal({"distcc_listen": value})
    assert_refusal(message, WORKER, "distcc_listen", "set distcc_listen to ")
    assert why in message


def test_listen_address_is_normalised():
    assert settings_for(FakeHost(WORKER, {"distcc_listen": " 10.0.0.11 "})).listen == "10.0.0.11"


def test_builder_address_on_loopback_is_refused():
    message = refusal({"distcc_builder_address": "127.0.1.1"})
    assert_refusal(message, WORKER, "distcc_builder_address", "set distcc_builder_address to the LAN address of that Pi")
    assert "is a loopback address" in message


# --- non-ASCII -------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value",
    [
        ("distcc_log_level", "caf\u00e9"),
        ("distcc_build_user", "p\u00ef"),
        ("distcc_compilers", ["gcc", "gcc\u201112"]),
        ("distcc_tmpfs_path", "/tmp/kernel\u2010build"),
    ],
)
def test_non_ascii_value_is_refused_and_printed_escaped(key, value):
    message = refusal({key: value})
    assert_refusal(message, WORKER, key, "use plain ASCII")
    assert "contains non-ASCII characters" in message


def test_non_ascii_host_name_is_refused():
    message = refusal({}, name="w\u00f6rker1")
    assert message.startswith("host 'w\\xf6rker1': the host name has non-ASCII characters. Fix: ")
    assert message.isascii()


# --- distcc_tmpfs_size -------------------------------------------------------------


@pytest.mark.parametrize("value", ["lots", "1.5G", "2GB", "2 G", "-1G", "", "8M", "0", True])
def test_unparseable_or_tiny_tmpfs_size_is_refused(value):
    message = refusal({"distcc_tmpfs_size": value})
    assert_refusal(message, WORKER, "distcc_tmpfs_size", "write it as a whole number with K, M or G")
    assert "is not a size of at least 16M" in message


@pytest.mark.parametrize("value, shown", [("1536m", "1536M"), ("3G", "3G"), (268435456, "268435456")])
def test_tmpfs_size_forms_that_parse(value, shown):
    assert settings_for(FakeHost(WORKER, {"distcc_tmpfs_size": value})).tmpfs_size == shown


# --- other typed settings ------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value, why, fix",
    [
        ("distcc_port", 70000, "is not a whole number from 1 to 65535", "set distcc_port to such a number"),
        ("distcc_port", "3632", "is not a whole number from 1 to 65535", "set distcc_port to such a number"),
        ("distcc_jobs", 0, "is not a whole number from 1 to 256", "set distcc_jobs to such a number"),
        ("distcc_nice", True, "is not a whole number from 0 to 20", "set distcc_nice to such a number"),
        ("distcc_apt_lock_wait", -1, "is not a whole number from 0 to 3600", "set distcc_apt_lock_wait to such a number"),
        ("distcc_discard_tmpfs", "True", "is not True or False", "set distcc_discard_tmpfs = True or"),
        ("distcc_wide_tables", "yes", "is not True or False", "set distcc_wide_tables = True or"),
        ("distcc_log_level", "verbose", "is not a distccd log level", "use one of critical, error,"),
        ("distcc_log_level", "warning", "is below notice", "use notice, info (the default) or debug"),
        ("distcc_log_level", "critical", "is below notice", "use notice, info (the default) or debug"),
        ("distcc_tmpfs_path", "/tmp", "is not a dedicated absolute path", "use a path of its own"),
        ("distcc_tmpfs_path", "kernel-build", "is not a dedicated absolute path", "use a path of its own"),
        ("distcc_tmpfs_mode", "0999", "is not an octal mode", "write it like '1777'"),
        ("distcc_k3s_units", "k3s", "is not a list of unit names", "set e.g. ['k3s', 'k3s-agent']"),
        ("distcc_compilers", "gcc", "is not a list of compiler names", "set e.g. ['gcc', 'gcc-12']"),
        ("distcc_build_user", "Pi User", "is not a user name", "set the user who runs the build"),
        ("distcc_build_packages", "bc bison", "is not a list of Debian package names", "set e.g. ['bc', 'bison'"),
        ("distcc_build_packages", ["bc", "Bison"], "is not a list of Debian package names", "set e.g. ['bc', 'bison'"),
        ("distcc_build_packages", ["bc", "flex; rm -rf /"], "is not a list of Debian package names",
         "set e.g. ['bc', 'bison'"),
    ],
)
def test_other_bad_values_are_refused(key, value, why, fix):
    message = refusal({key: value})
    assert_refusal(message, WORKER, key, fix)
    assert why in message


# --- check_inventory -------------------------------------------------------------------

BUILDER = FakeHost("builder.distcc.internal")
W1 = FakeHost("worker1.distcc.internal")
W2 = FakeHost("worker2.distcc.internal")
INVENTORY_FIX = "edit the inventory (see inventories/cluster.py). Nothing was changed on any host."


BUILDER_FIX = "list the one Pi that runs make as builder"


def inventory_refusal(group: str, fix: str, **groups: list[FakeHost]) -> str:
    """check_inventory()'s refusal of these groups: it names `group`, its
    fix begins with `fix` and ends with INVENTORY_FIX."""
    with pytest.raises(SettingsError) as raised:
        check_inventory(FakeInventory(**groups))
    assert max(len(line) for line in str(raised.value).splitlines()) <= 100, str(raised.value)
    message = raised.value.paragraph
    assert_refusal(message, None, group, fix)
    assert message.endswith(INVENTORY_FIX)
    return message


def test_inventory_without_builder_is_refused():
    message = inventory_refusal("group 'builder'", BUILDER_FIX, workers=[W1, W2])
    assert "must hold exactly one host, found 0 (none)" in message


def test_inventory_with_two_builders_is_refused_naming_both():
    message = inventory_refusal("group 'builder'", BUILDER_FIX, builder=[BUILDER, W1], workers=[W2])
    assert "found 2 (builder.distcc.internal, worker1.distcc.internal)" in message


def test_builder_listed_as_worker_is_refused():
    message = inventory_refusal("workers", "remove it from workers", builder=[BUILDER], workers=[W1, BUILDER])
    assert "host builder.distcc.internal is both the builder and a worker" in message


@pytest.mark.parametrize("workers", [None, []])
def test_inventory_without_workers_is_refused(workers):
    groups = {"builder": [BUILDER]} if workers is None else {"builder": [BUILDER], "workers": workers}
    message = inventory_refusal("group 'workers'", "list the Pis that run distccd as workers", **groups)
    assert "is empty or missing" in message


def test_host_listed_twice_counts_once():
    check_inventory(FakeInventory(builder=[BUILDER, BUILDER], workers=[W1, W1]))


def test_non_ascii_builder_names_are_printed_escaped():
    message = inventory_refusal("group 'builder'", BUILDER_FIX, builder=[BUILDER, FakeHost("b\u00fcilder")], workers=[W1])
    assert "found 2 (builder.distcc.internal, 'b\\xfcilder')" in message


def test_a_valid_inventory_passes():
    check_inventory(FakeInventory(builder=[BUILDER], workers=[W1, W2]))


# --- docs/safety.md ------------------------------------------------------------------


def test_every_row_of_docs_safety_names_existing_tests():
    """Each table row of docs/safety.md names at least one test, and each
    test it names exists (a parametrized lab case by its id)."""
    repo = Path(__file__).resolve().parents[2]
    docs = (repo / "docs" / "safety.md").read_text()
    sources = "".join(path.read_text() for path in sorted((repo / "tests").rglob("test_*.py")))
    rows = [line for line in docs.splitlines() if line.startswith("| ") and not line.startswith("| bad input")
            and not line.startswith("| fault")]
    assert len(rows) > 30
    for row in rows:
        names = re.findall(r"`(test_[a-z0-9_]+)(?:\[([^\]]+)\])?`", row.rsplit("|", 2)[-2])
        assert names, row
        for name, case in names:
            assert f"def {name}(" in sources, name
            if case:
                assert f'    "{case}": (' in sources, case
    assert docs.isascii()


# --- addresses derived on the worker ----------------------------------------------

def _captured_route(case: str) -> dict:
    fixture = Path(__file__).parent / "facts" / "network.PeerRoute" / f"{case}.json"
    return json.loads(fixture.read_text())["fact"]


def test_derived_addresses_on_loopback_are_refused():
    """A worker whose /etc/hosts maps the builder's name to 127.0.1.1 (captured
    from a lab worker) would listen on loopback and allow only itself."""
    route = _captured_route("own_name_loopback")
    problem = loopback_derivation(settings_for(FakeHost(WORKER)), "builder.distcc.internal", route)
    assert problem is not None and problem.isascii()
    assert "resolves on this worker to 127.0.1.1, a loopback address" in problem
    assert "listen on 127.0.0.1 and allow only 127.0.1.1/32" in problem


def test_explicit_addresses_are_not_derived_from_a_loopback_name():
    route = _captured_route("own_name_loopback")
    data = {"distcc_listen": "10.0.0.11", "distcc_allow": ["10.0.0.10/32"]}
    assert loopback_derivation(settings_for(FakeHost(WORKER, data)), "builder.distcc.internal", route) is None


def test_derived_addresses_from_a_lan_route_pass():
    route = _captured_route("builder")
    assert loopback_derivation(settings_for(FakeHost(WORKER)), "builder.distcc.internal", route) is None


def test_ssh_user_without_sudo_is_refused():
    """A copied inventory without group_data/all.py loses `_sudo = True`."""
    message = refusal({"ssh_user": "pi"})
    assert_refusal(message, WORKER, "_sudo", "set _sudo = True in the host's data")
    assert "is not True, and the SSH user pi is not root" in message


def test_root_or_sudo_is_enough():
    settings_for(FakeHost(WORKER, {"ssh_user": "root"}))
    settings_for(FakeHost(WORKER, {"ssh_user": "pi", "_sudo": True}))


def test_the_cluster_template_works_without_group_data():
    """inventories/cluster.py carries _sudo itself, so a copy of it elsewhere is complete."""
    import runpy

    template = runpy.run_path(str(Path(__file__).resolve().parents[2] / "inventories" / "cluster.py"))
    for name, data in [*template["builder"], *template["workers"]]:
        settings_for(FakeHost(name, data))
        assert data["_sudo"] is True


# --- sizes computed from the node ---------------------------------------------------

MIB = 1024**2


@pytest.mark.parametrize(
    "cpus, memory_mib, jobs",
    [
        (4, 906, 2),  # CM3+, 1 GB: about 906 MiB reported
        (4, 1848, 4),  # CM4, 2 GB: about 1.8 GiB reported
        (4, 7812, 4),  # CM4, 8 GB
        (1, 300, 1),  # never below one job
        (2, 0, 2),  # memory unknown: the CPU count
    ],
)
def test_default_jobs_follow_cpus_and_memory(cpus, memory_mib, jobs):
    assert jobs_for(settings_for(FakeHost(WORKER)), cpus, memory_mib * MIB) == jobs


def test_configured_jobs_win():
    assert jobs_for(settings_for(FakeHost(WORKER, {"distcc_jobs": 6})), 4, 906 * MIB) == 6


def test_default_tmpfs_is_half_the_builder_memory_and_fits_a_2gb_cm4():
    settings = settings_for(FakeHost(WORKER))
    assert tmpfs_size_for(settings, 1848 * MIB) == "924M"
    assert tmpfs_size_for(settings_for(FakeHost(WORKER, {"distcc_tmpfs_size": "3g"})), 1848 * MIB) == "3G"


def test_build_user_defaults_to_the_ssh_user():
    """No `pi` on Raspberry Pi OS since 2022: the SSH user is the build user."""
    assert settings_for(FakeHost(WORKER, {"ssh_user": "alice", "_sudo": True})).build_user == "alice"
    assert settings_for(FakeHost(WORKER, {"ssh_user": "alice", "_sudo": True, "distcc_build_user": "bob"})).build_user == "bob"


@pytest.mark.parametrize(
    "name, native, package",
    [
        ("aarch64-linux-gnu-gcc", "arm-linux-gnueabihf", "gcc-aarch64-linux-gnu"),
        ("aarch64-linux-gnu-g++-12", "arm-linux-gnueabihf", "g++-12-aarch64-linux-gnu"),
        ("arm-linux-gnueabihf-gcc", "aarch64-linux-gnu", "gcc-arm-linux-gnueabihf"),
        ("x86_64-linux-gnu-gcc", "x86_64-linux-gnu", "gcc"),  # the host's own triplet name: native gcc
        ("gcc", "aarch64-linux-gnu", "gcc"),
    ],
)
def test_compiler_names_map_to_their_debian_package(name, native, package):
    assert compiler_package(name, native) == package


def test_cross_compilers_must_be_triplet_names():
    assert settings_for(FakeHost(WORKER, {"distcc_cross_compilers": ["aarch64-linux-gnu-gcc"]})).cross_compilers == (
        "aarch64-linux-gnu-gcc",
    )
    message = refusal({"distcc_cross_compilers": ["clang"]})
    assert_refusal(message, WORKER, "distcc_cross_compilers", "set e.g. ['aarch64-linux-gnu-gcc'")
    assert "is not a list of cross compiler names (TRIPLET-gcc or TRIPLET-g++)" in message


def test_build_packages_default_to_the_kernel_guides_and_can_be_emptied():
    assert settings_for(FakeHost(WORKER)).build_packages == ("bc", "bison", "flex", "libssl-dev", "libelf-dev", "libncurses-dev", "make")
    assert settings_for(FakeHost(WORKER, {"distcc_build_packages": []})).build_packages == ()
    assert settings_for(FakeHost(WORKER, {"distcc_build_packages": ["git", "libncurses-dev"]})).build_packages == (
        "git", "libncurses-dev",
    )


# --- where a value comes from ----------------------------------------------------


def test_data_wins_over_host_data_over_group_data_over_the_default():
    """The precedence docs/settings.md states, on pyinfra's own Inventory:
    --data (override_data), then the host's data, then its group's, then the
    inventory's data for all, then the declared default."""
    from pyinfra.api import Inventory

    inventory = Inventory(
        ([("w1", {"distcc_nice": 5}), "w2"], {"distcc_mtu": 1400, "distcc_pod_grace": 7}),
        override_data={"distcc_port": 4000},
        workers=(["w1", "w2"], {"distcc_nice": 15, "distcc_port": 3000, "distcc_mtu": 9000}),
    )
    w1, w2 = (settings_for(inventory.get_host(name)) for name in ("w1", "w2"))
    assert (w1.port, w2.port) == (4000, 4000)
    assert (w1.nice, w2.nice) == (5, 15)
    assert (w1.mtu, w1.pod_grace) == (9000, 7)
    assert w1.k3s_timeout == SETTINGS["distcc_k3s_timeout"].default == 600


def test_a_field_without_a_declaration_is_refused_by_name():
    """A field added to Settings without setting(...) would have no key,
    default or check: the module does not import."""
    from dataclasses import dataclass

    from deploys.library.settings import FLAG, declarations_of, setting

    @dataclass(frozen=True)
    class Half:
        declared: bool = setting(False, "Declared.", FLAG)
        forgotten: bool = False

    with pytest.raises(TypeError, match="declare forgotten with setting"):
        declarations_of(Half)
