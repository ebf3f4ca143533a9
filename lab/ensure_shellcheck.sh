#!/bin/sh
# Make sure shellcheck is there: make unit and make test lint the survey as
# it is laid out to be read (docs/survey-*.sh) with Debian's shellcheck.
# As root on Debian: install Debian's shellcheck package (as ensure_engine.sh
# installs its packages). Anywhere else: say how to install it and stop.
set -eu

command -v shellcheck >/dev/null 2>&1 && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "shellcheck: installing Debian's shellcheck package"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
else
    echo "shellcheck: ERROR: shellcheck is missing. Install it (Debian: sudo apt-get install shellcheck; elsewhere: https://github.com/koalaman/shellcheck#installing) and run make again." >&2
    exit 1
fi
