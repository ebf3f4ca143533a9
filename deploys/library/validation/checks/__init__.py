"""Every check, one module per subject: builder.py (B-*), worker.py (the
worker's own W-*), reach.py (the builder reaching each worker, cluster-wide)
and host.py (H-*, every node). Each check is one function registered
with @check (model.py), and evaluate_cluster runs them all.
"""

from __future__ import annotations

from deploys.library.validation.checks import builder, host, reach, worker  # noqa: F401  (each registers its checks)
from deploys.library.validation.model import FAIL, REACHABLE, REGISTERED, Check, Cluster, Subject

# The wide table's column order, and the order in which a host's first
# problem is chosen: the order validation has always printed, which
# interleaves the subjects: the space and memory checks close it.
TABLE_ORDER = (
    "H-REACHABLE", "B-TMPFS", "B-DISTCCD-OFF", "B-CLIENT", "B-HOSTS", "B-PATH", "B-KERNEL-ARCH", "B-CCACHE", "B-PUMP",
    "B-DRYRUN", "W-DISTCCD", "W-OVERRIDE", "W-WHITELIST", "W-COMPILERS", "W-ALLOW", "W-INSECURE", "W-LISTEN",
    "W-USER", "W-REACH", "W-ALLOW-BUILDER", "H-GCC", "H-MTU", "H-NAMES", "H-K3S", "B-TMPFS-SPACE", "H-MEMORY",
    "W-TMP-SPACE",
)
if sorted(TABLE_ORDER) != sorted(spec.id for spec in REGISTERED):
    raise ValueError("checks.TABLE_ORDER must name every registered check once")
REGISTRY = sorted(REGISTERED, key=lambda spec: TABLE_ORDER.index(spec.id))

# Stable check IDs, in table order, with what each looks at.
CHECKS = {spec.id: spec.about for spec in REGISTRY}
COLUMNS = {spec.id: spec.column for spec in REGISTRY}


def evaluate_cluster(cluster: Cluster) -> dict[str, list[Check]]:
    """Every check for every inventory node, from the surveys gathered."""
    results: dict[str, list[Check]] = {}
    for node in cluster.nodes:
        survey = cluster.surveys.get(node.name)
        if survey is None:
            why = cluster.unsurveyed.get(node.name, "could not connect or survey this host")
            results[node.name] = [Check(REACHABLE.id, FAIL, why)]
            continue
        subject = Subject(node, survey, cluster)
        results[node.name] = [
            Check(spec.id, *spec.evaluate(subject)) for spec in REGISTRY if spec.role in ("host", node.role)
        ]
    return results
