"""What every refusal says, asserted in one place for every suite.

A refusal (settings_for(), check_inventory(), a deploy stopping while it
loads) is one ASCII paragraph that names the host, the setting and the fix,
and says that nothing was changed. Tests assert those facts through
assert_refusal() and the words of the cause where they matter, never the
whole paragraph: the wording may change, the facts may not.
"""

from __future__ import annotations

NOTHING_CHANGED = "Nothing was changed on any host."


def assert_refusal(message: str, host: str | None, setting: str, fix: str) -> None:
    """message refuses `setting` on `host` and gives `fix`.

    host: the host the paragraph starts with ("host NAME: setting SETTING"),
    or None for the inventory's shape ("inventory: ", where setting is the
    group it names). fix: how the text after "Fix: " begins."""
    assert message.isascii(), message
    assert "\n" not in message.strip(), message
    cause, marker, remedy = message.partition("Fix: ")
    assert marker, f"no 'Fix: ' in {message!r}"
    if host is None:
        assert cause.startswith("inventory: "), message
        assert setting in message, f"{setting!r} not named in {message!r}"
    else:
        assert cause.startswith(f"host {host}: setting {setting} "), message
    assert remedy.startswith(fix), f"the fix is not {fix!r}: {message!r}"
    assert message.rstrip().endswith(NOTHING_CHANGED), message
