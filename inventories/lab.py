"""The local Docker lab (make lab-up), reached like a real Pi cluster.

A stopped node stays in the inventory, unreachable, as a Pi that is off
stays in a real one; LAB_LEAVE_OUT names nodes to leave out instead.

Every node is reached over SSH as the lab's user (`pi`; on stock nodes,
LAB_FLAVOR=stock, the first user LAB_USER made, default ada) with
passwordless sudo; addresses, users and names are read from Docker each time
this inventory is loaded. Host names are the names every node resolves: the
FQDNs, or on stock nodes the short hostnames.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.containers import known_hosts_file, static_address  # noqa: E402
from lab.engine_api import nodes  # noqa: E402
from lab.settings import SSH_KEY, is_emulated  # noqa: E402
from operations._connection import connect_errors_named  # noqa: E402

# pyinfra connects before it loads a deploy file: a node it cannot reach is
# named from here on, with the cause and the fix.
connect_errors_named()

# LAB_LEAVE_OUT=worker2 (hostnames, comma-separated): nodes left out of the
# inventory, as a user deletes a Pi from theirs.
_left_out = {name.strip() for name in os.environ.get("LAB_LEAVE_OUT", "").split(",") if name.strip()}
_listed = [n for n in nodes() if n.role in ("builder", "worker") and n.hostname not in _left_out]
_running = [n for n in _listed if n.state == "running"]
if not _running:
    raise SystemExit("inventories/lab.py: the lab is not running. Start it with: make lab-up")

_ssh = {
    "ssh_key": str(SSH_KEY),
    # Learned on first use, in a file named after these very containers.
    "ssh_known_hosts_file": str(known_hosts_file(_running)),
    "ssh_strict_host_key_checking": "accept-new",
}

# Emulated (qemu-user) nodes compile tens of times slower than native ones:
# the smoke test's 400-function -O2 compile takes 30 to 100 s there, and its
# real path compiles it once per file. 40 functions still keep cc1 running
# for seconds there, long enough for the worker's watch to see it.
_emulated = any(n.arch and is_emulated(n.arch) for n in _running)
_slow = {"distcc_smoke_timeout": 600, "distcc_smoke_functions": 40} if _emulated else {}


def _data(node) -> dict:
    # The SSH user is also the build user (distcc_build_user's default). A
    # stopped node stays listed at its fixed address, as a Pi that is off
    # stays in a real inventory: it does not answer, and the run says so.
    address = node.address or static_address(node)
    return {"ssh_hostname": address, "ssh_user": node.user, **_ssh, **_slow}


builder = [(n.name, _data(n)) for n in _listed if n.role == "builder"]
workers = [(n.name, _data(n)) for n in _listed if n.role == "worker"]
