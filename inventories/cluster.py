"""Template inventory for a real Raspberry Pi (CM3+/CM4) cluster.

Copy this file (or edit it in place) and replace every value marked
CHANGE-ME. Then preview the switch into build mode without touching anything:

    pyinfra inventories/cluster.py deploys/mode_switch.py --dry

What you must provide:
- builder: exactly one host, the Pi that runs `make` (the distcc client).
  It never runs distccd and gets the tmpfs at distcc_tmpfs_path.
- workers: one or more Pis that run distccd. Never list the builder here.
- Each host name must be the name the other Pis resolve (FQDN or /etc/hosts
  entry); the workers resolve the builder's name to build their --allow list.
- PI_USER: the user you created when flashing (the README calls it ada), with
  your key and passwordless sudo on every Pi (pyinfra runs with sudo).
  Raspberry Pi OS has had no `pi` user since 2022, so there is no name to
  default to: until you set it, it is the name you are logged in as here,
  the one `ssh pi-worker1.lan` would try.
- ssh_key: the private key that user accepts.

This file is complete on its own: it sets `_sudo` itself, so a copy of it
elsewhere works without inventories/group_data/ beside it (group_data/*.py is
read only from the inventory's folder and the current directory).

Settings (all optional, defaults in deploys/library/settings.py) go in
inventories/group_data/all.py for everyone, or per host as in the examples.
"""

import getpass

from operations._connection import connect_errors_named

# pyinfra connects before it loads a deploy file: a Pi it cannot reach (off,
# its key refused, its name unknown) is named from here on, with the fix.
connect_errors_named()

PI_USER = getpass.getuser()  # CHANGE-ME: e.g. "ada", the user you created when flashing

_ssh = {
    "ssh_user": PI_USER,  # the SSH user, with passwordless sudo on every Pi; also the build user
    "ssh_key": "~/.ssh/id_ed25519",  # CHANGE-ME: the private key for that user
    # Every operation runs with sudo (the deploys refuse to start without it).
    "_sudo": True,
}

builder = [
    # CHANGE-ME: the builder Pi's resolvable name; e.g. a CM4 with 8 GB.
    ("pi-builder.lan", {**_ssh, "distcc_tmpfs_size": "3G"}),
]

workers = [
    # CHANGE-ME: every worker Pi; distcc_jobs caps parallel compiles on that Pi
    # (default: its CPU count). A 1 GB CM3+ should take 2.
    ("pi-worker1.lan", {**_ssh}),
    ("pi-worker2.lan", {**_ssh, "distcc_jobs": 2}),
]
