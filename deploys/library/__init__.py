"""The @deploy functions and their helpers, imported by the runnable deploy
files one folder up (pyinfra INVENTORY deploys/NAME.py). Nothing here runs
an operation or changes pyinfra when imported: each runnable file calls
start_run() first."""

from deploys.library.run_lock import releases_on_disconnect
from operations._connection import connect_errors_named, lost_host_is_a_host_failure


def start_run() -> None:
    """What every runnable deploy file calls first, before any fact is read
    or operation runs (tests/unit/test_layers.py checks that each does): a
    host lost mid-run then fails alone instead of ending the whole run
    (operations/_connection.py), and a run that took the cluster's run lock
    gives it back as it disconnects, however it ended (run_lock.py).
    pyinfra runs the file once per host; every call after the first changes
    nothing."""
    lost_host_is_a_host_failure()
    connect_errors_named()
    releases_on_disconnect()
