"""The pyinfra floor of make bench: the least any pyinfra deploy costs.

Run by bench/run.py exactly as the timed deploys are:

    pyinfra -y --json -vv inventories/lab.py bench/pyinfra_floor.py

It reads one fact on every host, pyinfra's own server.Command whose command
is the floor's probe (bench/analysis.py PROBE), with sudo from the
inventory's data as every deploy here, and does nothing else. Its wall time
is pyinfra's start-up, inventory, SSH connects, that one exec per host (the
same `sudo -H -n sh -c PROBE` the floor sends with OpenSSH) and disconnect:
what a deploy that sent one command per host could not go below.
"""

from pyinfra import host
from pyinfra.facts.server import Command

from bench.analysis import PROBE

host.get_fact(Command, command=PROBE)
