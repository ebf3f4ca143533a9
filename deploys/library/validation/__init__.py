"""Read-only validation of DISTCC BUILD MODE.

The first host whose deploy file loads surveys every connected host itself
(one survey command per host, facts/survey.py), at most --parallel at once
(where a host's gcc differs from the builder's, a second command on it and
on the builder asks dpkg which packages the two come from), then evaluates
every check against the whole cluster, prints an ASCII table and the
details, writes the JSON report, and fails the run when a check
FAILs; every other host finds the run under way and returns. No host ever
waits for another host's loader, so no --parallel value can deadlock: the
loaders sit in pyinfra's pool, the surveys in a pool of their own. No
operation is added, so validation can change nothing, with or without --dry.

The parts: model.py (statuses, results, the Subject a check receives,
@check), checks/ (one module per subject: builder, worker, reach, host),
render.py (the tables and the JSON report), survey.py (what each host is
asked, and the surveys) and deploy.py (the deploy).
"""

from deploys.library.validation.deploy import cluster_distcc_validate

__all__ = ["cluster_distcc_validate"]
