"""The docker CLI as the lab calls it, and the lab's one way to say what it does."""

from __future__ import annotations

import subprocess

from lab.settings import LabError


def docker(*args: str, check: bool = True, capture: bool = True, input: str | None = None) -> str:
    proc = subprocess.run(
        ["docker", *args],
        check=False,
        text=True,
        input=input,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
    )
    if check and proc.returncode != 0:
        raise LabError(f"docker {' '.join(args[:3])} failed: {(proc.stderr or '').strip()}")
    return (proc.stdout or "").strip()


def say(message: str) -> None:
    print(f"lab: {message}", flush=True)
