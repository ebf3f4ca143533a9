"""How one thing changes on a host: each module holds the operations of one
subject (distcc, mounts, systemd, apt)."""
