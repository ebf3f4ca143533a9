"""The deploy: survey every host once, then evaluate, print and report
every check (the package's docstring says how no host waits for another).
"""

from __future__ import annotations

import sys

from pyinfra import host, inventory
from pyinfra.api import deploy
from pyinfra.context import ctx_state

from deploys.library.cluster import check_inventory, first_loader
from deploys.library.settings import settings_for
from deploys.library.validation.checks import evaluate_cluster
from deploys.library.validation.model import FAIL, Cluster
from deploys.library.validation.render import render_table, write_report
from deploys.library.validation.survey import NOT_CONNECTED, read_gcc_packages, survey_hosts
from operations._connection import connect_failure
from operations._printed import Refusal


class ValidationFailed(Refusal):
    """At least one check FAILed; the message names each."""


@deploy("cluster distcc validate")
def cluster_distcc_validate():
    """Survey every host once, then evaluate, print and report every check."""
    check_inventory(inventory)
    settings_for(host)
    run_state = ctx_state.get()
    if not first_loader(run_state, "validation"):
        return
    cluster = Cluster.from_inventory(inventory, {})
    active = list(run_state.inventory.get_active_hosts())
    surveys, unsurveyed = survey_hosts(run_state, active)
    read_gcc_packages(run_state, active, surveys, cluster.builder.name)
    active_names = {h.name for h in active}
    for node in cluster.nodes:
        if node.name not in active_names:
            unsurveyed[node.name] = connect_failure(inventory.get_host(node.name)) or NOT_CONNECTED
    cluster.surveys, cluster.unsurveyed = surveys, unsurveyed
    results = evaluate_cluster(cluster)
    report = write_report(cluster.builder.settings.report_path, results)
    roles = {node.name: node.role for node in cluster.nodes}
    table = render_table(results, roles, wide=cluster.builder.settings.wide_tables)
    print("\n" + table + f"\nreport: {report}\n", file=sys.stderr, flush=True)
    failed = [f"{c.id} on {n}" for n, checks in results.items() for c in checks if c.result == FAIL]
    if failed:
        raise ValidationFailed(
            f"validation: {len(failed)} checks FAILED ({'; '.join(failed)}). The table above says what was found "
            f"and how to fix each; the JSON report is {report}."
        )
