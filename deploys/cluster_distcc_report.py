"""Read-only build report: jobs per worker (ok, failed and why) and jobs the
builder compiled itself (and why), since the mark or the last mode switch.

Run: pyinfra INVENTORY deploys/cluster_distcc_report.py
Mark the start of a build first with deploys/cluster_distcc_mark.py.
Report: reports/build-report.json (next to distcc_report_path).
"""

from deploys.library import start_run
from deploys.library.report import cluster_distcc_report

start_run()
cluster_distcc_report()
