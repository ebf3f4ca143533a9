"""A real distributed compile on every worker, proven on the builder and on the worker.

Run: pyinfra INVENTORY deploys/cluster_distcc_smoketest.py
Prints PASS or FAIL (with the cause from the worker log) per worker; exits non-zero on a FAIL.
"""

from deploys.library import start_run
from deploys.library.smoketest import cluster_distcc_smoketest

start_run()
cluster_distcc_smoketest()
