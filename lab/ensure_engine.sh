#!/bin/sh
# Make sure a Docker engine answers and the lab's image tools are present.
# As root on Debian with no engine: install Debian's docker.io and start dockerd.
# Anywhere else: say exactly what is missing and stop.
set -eu

need_apt=""
command -v docker >/dev/null 2>&1 || need_apt="$need_apt docker.io"
command -v debootstrap >/dev/null 2>&1 || need_apt="$need_apt debootstrap"
command -v ssh >/dev/null 2>&1 || need_apt="$need_apt openssh-client"
if ! docker info >/dev/null 2>&1 && ! command -v dockerd >/dev/null 2>&1; then
    case "$need_apt" in *docker.io*) ;; *) need_apt="$need_apt docker.io" ;; esac
fi

if [ -n "$need_apt" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "engine: installing Debian packages:$need_apt"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need_apt >/dev/null
    else
        echo "engine: ERROR: missing:$need_apt. Install them (Debian: sudo apt-get install$need_apt)," \
             "make sure 'docker info' works for this user, and run make again." >&2
        exit 1
    fi
fi

if docker info >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "engine: ERROR: no Docker engine answers ('docker info' fails). Start Docker" \
         "(e.g. sudo systemctl start docker) or add this user to the docker group, then run make again." >&2
    exit 1
fi

echo "engine: starting dockerd (log: /var/log/dockerd.log)"
nohup dockerd >/var/log/dockerd.log 2>&1 &
i=0
until docker info >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 60 ]; then
        echo "engine: ERROR: dockerd did not answer within 60s; see /var/log/dockerd.log" >&2
        tail -n 20 /var/log/dockerd.log >&2 || true
        exit 1
    fi
    sleep 1
done
echo "engine: dockerd is up"
