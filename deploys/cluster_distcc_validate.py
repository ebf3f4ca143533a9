"""Read-only validation of DISTCC BUILD MODE: every check, an ASCII table, a JSON report.

Run: pyinfra INVENTORY deploys/cluster_distcc_validate.py
Exits non-zero when any check FAILs. Report: reports/validate.json (distcc_report_path).
"""

from deploys.library import start_run
from deploys.library.validation import cluster_distcc_validate

start_run()
cluster_distcc_validate()
