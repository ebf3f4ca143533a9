"""docs/kernel-build.md's shell blocks, as the lab tests that run them read
them: each block marked `<!-- lab: HOW -->`, with the section it is under."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.lab.harness import REPO

GUIDE = REPO / "docs" / "kernel-build.md"
TREE = "/tmp/kernel-build/linux"
# The blocks whose HOW names this module are run there (they need the lab in
# pump mode), not by test_j_kernel_guide.py.
ELSEWHERE = "tests/lab/test_l_ccache_and_pump.py"


@dataclass(frozen=True)
class Block:
    section: str
    how: str
    lines: list[str]


def guide_blocks() -> list[Block]:
    """The guide's shell blocks with their lab note, in order, and the
    section ("## N. ...") each is under."""
    text = GUIDE.read_text()
    blocks = []
    for match in re.finditer(r"<!-- lab: (?P<how>[^>]*?) -->\n```sh\n(?P<body>.*?)```", text, re.S):
        heading = re.findall(r"^## (\S+)", text[: match.start()], re.M)[-1].rstrip(".")
        lines = [line for line in match["body"].splitlines() if line.strip()]
        blocks.append(Block(heading, match["how"], lines))
    return blocks


def block(section: str, how: str = "") -> Block:
    found = [b for b in guide_blocks() if b.section == section and b.how.startswith(how)]
    assert len(found) == 1, (section, how, found)
    return found[0]
