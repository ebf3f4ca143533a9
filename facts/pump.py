"""distcc's pump mode on the builder (distcc_pump): one real pump compile to
each worker, which validation reads (B-PUMP)."""

from __future__ import annotations

from typing import TypedDict

from pyinfra.api import StringCommand

from facts._parsed import ParsedFact
from facts._script import ShellNote
from facts._shell import assign

# What a host-list entry needs to take pump jobs (preprocessed on the
# worker, from the headers the include server names); distcc 3.4 refuses
# ,cpp without ,lzo ("pump mode (',cpp') requires compression").
PUMP_OPTIONS = ",cpp,lzo"


class PumpProbe(TypedDict):
    installed: bool
    # worker host entry -> {"rc": exit status, "pumped": preprocessed on the
    # worker, "reason": distcc's include-server warning when not}
    workers: dict[str, dict]


def parse_probe(lines: list[str]) -> PumpProbe:
    probe = PumpProbe(installed=False, workers={})
    for line in lines:
        kind, _, rest = line.strip().partition(" ")
        if kind == "installed":
            probe["installed"] = True
        elif kind == "pump":
            host, _, outcome = rest.partition(" ")
            entry = probe["workers"].setdefault(host, {"rc": None, "pumped": False, "reason": None})
            key, _, value = outcome.partition(" ")
            if key == "rc" and value.strip().lstrip("-").isdigit():
                entry["rc"] = int(value)
            elif key == "pumped":
                entry["pumped"] = value.strip() == "yes"
            elif key == "warning":
                entry["reason"] = entry["reason"] or value.strip()
    return probe


class PumpCompiles(ParsedFact[PumpProbe]):
    """
    As the build user, under distcc-pump (so with an include server), one
    small compile sent to each worker alone with DISTCC_FALLBACK=0: its exit
    status, whether the worker preprocessed it (no local `cpp` in distcc's
    log: a pump job), and distcc's include-server warning when it did not.
    The compile's files live in a temporary directory removed at the end; each
    worker's distccd logs one job.

    .. code:: python

        {"installed": True,
         "workers": {"worker1.distcc.internal:3632": {"rc": 0, "pumped": True, "reason": None}}}
    """

    shellcheck = (ShellNote("SC2016", r"runuser -l \"\$u\" -w P -c '", "for the build user's login shell: P comes in through -w"),)

    def command(self, user: str, hosts: list[str], timeout: int = 60) -> StringCommand:
        # The entries ("NAME:PORT") reach the login shell through the
        # environment (runuser -w), never inside its quoted script.
        return StringCommand(
            assign("u", user), ";", assign("P", " ".join(hosts)), "; export P; runuser -l \"$u\" -w P -c '",
            "command -v distcc-pump >/dev/null 2>&1 || exit 0; echo installed;",
            "d=$(mktemp -d) || exit 0; trap \"rm -rf $d\" EXIT; cd \"$d\" && echo \"int pump_probe(void) { return 1; }\" > p.c;",
            f"all=; for h in $P; do all=\"$all $h/1{PUMP_OPTIONS}\"; done;",
            "DISTCC_HOSTS=$all distcc-pump sh -c \"for h in $P; do",
            f"DISTCC_HOSTS=\\$h/1{PUMP_OPTIONS} DISTCC_FALLBACK=0 DISTCC_LOG=\\$PWD/c.log",
            f"timeout {int(timeout)} distcc gcc -c p.c -o p.o >/dev/null 2>&1; echo pump \\$h rc \\$?;",
            "grep -q \\\"cpp p.c on localhost\\\" c.log && echo pump \\$h pumped no || echo pump \\$h pumped yes;",
            "sed -n \\\"s/.*(dcc_talk_to_include_server) Warning: /pump \\$h warning /p\\\" c.log | head -n 1;",
            "rm -f c.log p.o; done\" 2>/dev/null; true'",
            "</dev/null 2>/dev/null; true",
        )

    parse = staticmethod(parse_probe)
