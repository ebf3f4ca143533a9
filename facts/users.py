"""Facts about the build user: the environment a login shell gives them,
which is what `make` on the builder will see."""

from __future__ import annotations

from typing import TypedDict

from pyinfra.api import FactBase, StringCommand

from facts._shell import assign


class LoginEnv(TypedDict):
    user: str
    exists: bool
    home: str | None
    path: list[str]
    distcc_env: dict[str, str]
    distcc_hosts: list[str] | None


class LoginEnvironment(FactBase[LoginEnv]):
    """
    The build user's login-shell PATH, DISTCC_* variables, and the host list
    `distcc --show-hosts` resolves for them (None when distcc is missing).

    .. code:: python

        {"user": "pi", "exists": True, "home": "/home/pi",
         "path": ["/usr/lib/distcc", "/usr/local/bin", "/usr/bin", "/bin"],
         "distcc_env": {"DISTCC_FALLBACK": "1"},
         "distcc_hosts": ["worker1.distcc.internal:3632/4"]}

    Needs root (use _sudo) to enter the user's login shell.
    """

    def command(self, user: str) -> StringCommand:
        return StringCommand(
            assign("u", user), ";",
            'printf "user %s\\n" "$u";',
            'if id "$u" >/dev/null 2>&1; then echo exists;',
            'runuser -l "$u" -c \'printf "HOME %s\\nPATH %s\\n" "$HOME" "$PATH"; env | grep "^DISTCC_" | sed "s/^/env /";',
            'if command -v distcc >/dev/null 2>&1; then echo hosts; distcc --show-hosts 2>/dev/null | sed "s/^/host /"; fi\'',
            "</dev/null 2>/dev/null; fi; true",
        )

    def process(self, output: list[str]) -> LoginEnv:
        return parse_login_environment(output)

    @staticmethod
    def default() -> LoginEnv:
        return parse_login_environment([])


def parse_login_environment(lines: list[str], user: str = "") -> LoginEnv:
    env = LoginEnv(user=user, exists=False, home=None, path=[], distcc_env={}, distcc_hosts=None)
    for line in lines:
        kind, _, rest = line.strip().partition(" ")
        if kind == "user":
            env["user"] = rest
        elif kind == "exists":
            env["exists"] = True
        elif kind == "HOME":
            env["home"] = rest.strip() or None
        elif kind == "PATH":
            env["path"] = [p for p in rest.strip().split(":") if p]
        elif kind == "env":
            key, _, value = rest.partition("=")
            env["distcc_env"][key] = value
        elif kind == "hosts":
            env["distcc_hosts"] = []
        elif kind == "host" and env["distcc_hosts"] is not None:
            env["distcc_hosts"].append(rest.strip())
    return env
