"""The survey as shell to read: docs/survey-builder.sh and docs/survey-worker.sh.

Validation sends every host one command, the survey (facts/survey.py), as one
line of some 9,000 characters. These files are that command for the lab's
cluster (a builder and two workers, default settings but distcc_ccache and
distcc_pump, on so that the builder's file shows every section), with the arguments
validation computes for it, laid out one section to a block under a comment
saying what it reads (facts/survey.py survey_script). Regenerate them with
`make survey-docs` (python -m deploys.library.survey_docs);
tests/unit/test_survey_script.py fails when they differ from what the code
sends, and `make unit` runs shellcheck on them.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from pyinfra.api import Inventory
from pyinfra.context import ctx_host, ctx_inventory

from deploys.library.cluster import BUILDER_GROUP, WORKERS_GROUP
from deploys.library.settings import settings_for
from deploys.library.validation.survey import survey_arguments
from facts._script import WIDTH
from facts.survey import HostSurvey, survey_script

DOCS = Path(__file__).resolve().parents[2] / "docs"
LAB_BUILDER = "builder.distcc.internal"
LAB_WORKERS = ("worker1.distcc.internal", "worker2.distcc.internal")
# The lab's host data (inventories/group_data/all.py; its lab.py sets only
# the tmpfs size, which the survey does not read): every setting the survey
# reads is its default.
LAB_DATA = {"ssh_user": "pi", "_sudo": True}
# The sections only a builder with ccache or pump mode gets.
SPEED_DATA = {"distcc_ccache": True, "distcc_pump": True}
REGENERATE = "make survey-docs (python -m deploys.library.survey_docs)"


def lab_survey_arguments() -> dict[str, dict]:
    """The builder's and a worker's HostSurvey arguments in the lab's
    cluster, as validation computes them (survey_arguments)."""
    names = [(LAB_BUILDER, {**LAB_DATA, **SPEED_DATA}), *((name, dict(LAB_DATA)) for name in LAB_WORKERS)]
    groups = {BUILDER_GROUP: ([LAB_BUILDER], {}), WORKERS_GROUP: (list(LAB_WORKERS), {})}
    inventory = Inventory((names, {}), **groups)
    arguments = {}
    with ctx_inventory.use(inventory):
        for role, name in (("builder", LAB_BUILDER), ("worker", LAB_WORKERS[0])):
            node = inventory.get_host(name)
            with ctx_host.use(node):
                arguments[role] = survey_arguments(settings_for(node))
    return arguments


def _header(role: str, arguments: dict) -> list[str]:
    host = LAB_BUILDER if role == "builder" else LAB_WORKERS[0]
    length = len(HostSurvey().command(**arguments).get_raw_value())
    paragraphs = [
        f"The survey that validation sends a {role} (facts/survey.py HostSurvey, "
        f"deploys/library/validation/survey.py): everything it reads from {host}, here in a lab cluster of "
        "a builder and two workers with default settings.",
        f"Validation sends it as ONE command line of {length} characters (run by sudo sh -c). This "
        "file is that command laid out to be read: only spaces became line breaks, where a newline "
        "means what the space did (inside the sh -c '...' scripts too), and the indentation and the # "
        "lines are added. Take those out and join the lines with one space each, and it is the "
        "command, character for character. Each section prints '##survey NAME', then the lines "
        "facts/survey.py parses with that fact's own parser.",
        f"Generated, do not edit: {REGENERATE}. tests/unit/test_survey_script.py fails when this "
        "file is not what the code sends, and make unit runs shellcheck -s sh on it: a finding that "
        "stands has its disable directive, with the reason, from where that command is defined.",
        "HostSurvey's arguments, as validation's survey_arguments gives them:",
    ]
    lines: list[str] = []
    for paragraph in paragraphs:
        lines += ["", *textwrap.wrap(paragraph, WIDTH - 2, break_on_hyphens=False)]
    for key, value in arguments.items():
        shown = (" ".join(value) or "(none)") if isinstance(value, list) else value
        lines.append(f"  {key}: {shown}")
    return lines[1:]


def rendered() -> dict[Path, str]:
    """Each file's text, as the code sends the survey today."""
    return {
        DOCS / f"survey-{role}.sh": survey_script(arguments, _header(role, arguments))
        for role, arguments in lab_survey_arguments().items()
    }


def main() -> None:
    for path, text in rendered().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(DOCS.parent)} ({len(text.splitlines())} lines)", file=sys.stderr)


if __name__ == "__main__":
    main()
