"""The survey's orchestration: the arguments of each host's one survey
command (facts/survey.py HostSurvey), the surveys at most --parallel at
once, and the second read of gcc's packages where H-GCC needs it.
"""

from __future__ import annotations

from pyinfra import host, inventory

from deploys.library.builder import PROFILE_SCRIPT
from deploys.library.cluster import on_each, peer_name, role_of, worker_hosts
from deploys.library.settings import Settings, settings_for
from deploys.library.validation.checks.host import gcc_package_reads
from deploys.library.worker import builder_peer
from facts.compiler import INVOKED_NAMES, GccPackage
from facts.survey import HostSurvey, Survey


def survey_arguments(settings: Settings) -> dict:
    # The names distcc uses here (see H-NAMES): the builder resolves the
    # workers, a worker the builder, so no survey grows with the others.
    if role_of(host) == "builder":
        names = [peer_name(w) for w in worker_hosts(inventory)]
    else:
        names = [builder_peer(settings)]
    arguments = {
        "names": names,
        "port": settings.port,
        "k3s_units": list(settings.k3s_units),
    }
    if role_of(host) == "builder":
        arguments.update(
            tmpfs_path=settings.tmpfs_path,
            build_user=settings.build_user,
            workers=[peer_name(w) for w in worker_hosts(inventory)],
            profile_script=PROFILE_SCRIPT,
            sent_names=[*INVOKED_NAMES, *settings.cross_compilers],
            cross_compilers=list(settings.cross_compilers),
        )
        if settings.ccache:
            arguments["ccache"] = True
        if settings.pump:
            arguments["pump"] = True
    else:
        arguments["builder_peer"] = builder_peer(settings)
        arguments["log_dir"] = settings.log_dir
    return arguments


NOT_CONNECTED = (
    "pyinfra could not connect (its error is above); check that the host is up and sshd runs on it, and its "
    "address, SSH user and key in the inventory"
)
SURVEY_FAILED = (
    "connected, but the survey command failed (pyinfra's output above shows its error); check that the SSH "
    "user has passwordless sudo and that sh, bash and iproute2 are installed"
)


def survey_hosts(run_state, hosts: list) -> tuple[dict[str, Survey | None], dict[str, str]]:
    """One survey command on each host."""
    answers = on_each(run_state, hosts, lambda node: node.get_fact(HostSurvey, **survey_arguments(settings_for(node))))
    surveys: dict[str, Survey | None] = dict(answers)  # type: ignore[arg-type]
    unsurveyed = {name: SURVEY_FAILED for name, survey in surveys.items() if survey is None}
    return surveys, unsurveyed


def read_gcc_packages(run_state, hosts: list, surveys: dict[str, Survey | None], builder_name: str) -> None:
    """Where gcc_package_reads says H-GCC will name packages, a second
    command on those hosts only, into their surveys; a host that fails it
    keeps its survey, and its H-GCC FAIL names no package."""
    wanted = set(gcc_package_reads(surveys, builder_name))
    readers = [node for node in hosts if node.name in wanted]
    if not readers:
        return
    for name, package in on_each(run_state, readers, lambda node: node.get_fact(GccPackage)).items():
        survey = surveys[name]
        if survey is not None and package is not None:
            survey["gcc_package"] = package  # type: ignore[typeddict-item]
