"""Mark the start of a build for deploys/cluster_distcc_report.py: records
where every distcc log stands now (reports/build-mark.json, on this machine).
Changes nothing on any host.

Run: pyinfra INVENTORY deploys/cluster_distcc_mark.py
"""

from deploys.library import start_run
from deploys.library.report import cluster_distcc_mark

start_run()
cluster_distcc_mark()
