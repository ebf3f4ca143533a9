"""How one thing changes on a host: each module holds the operations of one
subject (distcc, mounts, systemd, apt)."""

from operations._connection import lost_host_is_a_host_failure

# Every deploy imports this package before any of its operations runs.
lost_host_is_a_host_failure()
