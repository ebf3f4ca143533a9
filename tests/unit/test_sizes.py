"""tmpfs sizes as settings write them and as the kernel reports them."""

import pytest

from operations.mounts import parse_size, tmpfs_bytes
from tests.refusals import assert_refusal
from tests.unit.harness import WORKER, FakeHost


@pytest.mark.parametrize(("size", "expected"), [("256M", 268435456), ("3G", 3221225472), ("512k", 524288), ("4096", 4096)])
def test_parse_size(size, expected):
    assert parse_size(size) == expected


@pytest.mark.parametrize("size", ["", "3GB", "1.5G", "-1M", "50%", "M"])
def test_parse_size_refuses_what_it_cannot_read(size):
    with pytest.raises(ValueError):
        parse_size(size)


def test_tmpfs_bytes_rounds_up_to_pages_as_the_kernel_does():
    # Captured on the lab builder: `mount -t tmpfs -o size=1001k` then
    # `stat -f -c "%S %b"` printed "4096 251" (1028096 bytes).
    assert tmpfs_bytes("1001K") == 4096 * 251
    assert tmpfs_bytes("256M") == parse_size("256M")


def test_tmpfs_bytes_rounds_to_the_hosts_page_size():
    # The kernel (mm/shmem.c) keeps a tmpfs size as DIV_ROUND_UP(size,
    # PAGE_SIZE) pages and statfs reports f_bsize = PAGE_SIZE: on a 16 KiB-page
    # kernel (Raspberry Pi 5) size=1001k is 63 pages. Compared with the 4 KiB
    # rounding, the mount would look wrong and be remounted on every run.
    assert tmpfs_bytes("1001K", page_size=16384) == 16384 * 63
    assert tmpfs_bytes("1001K", page_size=16384) != tmpfs_bytes("1001K")
    assert tmpfs_bytes("256M", page_size=16384) == parse_size("256M")
    # A host whose page size could not be read (TmpfsMount's page_size 0).
    assert tmpfs_bytes("1001K", page_size=0) == 4096 * 251


# --- distcc_worker_tmp_size: validated as distcc_tmpfs_size is ---------------------


def _settings(data: dict):
    from deploys.library.settings import settings_for

    return settings_for(FakeHost(WORKER, data))


def test_worker_tmp_size_defaults_to_256m_and_is_rendered_into_the_override():
    from deploys.library.worker import distccd_config
    from operations.templates import render_template

    settings = _settings({})
    assert settings.worker_tmp_size == "256M"
    assert _settings({"distcc_worker_tmp_size": "512m"}).worker_tmp_size == "512M"
    route = {"address": "10.0.0.10", "source": "10.0.0.11", "mtu": 1500}
    text = render_template("distcc-override.conf.j2", distccd_config(settings, route, 4))
    assert "\nTemporaryFileSystem=/tmp:mode=1777,size=256M /var/tmp:ro\n" in text
    assert not any(line.startswith("PrivateTmp=") for line in text.splitlines())


@pytest.mark.parametrize("value", ["1.5G", "lots", "2GB", "-1G", "", "8M", "0", True])
def test_worker_tmp_size_that_cannot_be_parsed_or_is_tiny_is_refused(value):
    from deploys.library.settings import SettingsError

    with pytest.raises(SettingsError) as raised:
        _settings({"distcc_worker_tmp_size": value})
    message = raised.value.paragraph
    assert_refusal(message, WORKER, "distcc_worker_tmp_size", "write it as a whole number with K, M or G")
    assert f"= {ascii(value)} is not a size of at least 16M" in message
