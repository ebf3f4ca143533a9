#!/bin/sh
# Make sure a Docker engine answers and the lab's image tools are present.
# As root on Debian with no engine: install Debian's docker.io and start dockerd.
# Anywhere else: say exactly what is missing and stop.
# When LAB_ARCH or LAB_WORKER_ARCHS asks for an architecture this machine does
# not run natively (arm64, armhf: what Raspberry Pis run), also make sure
# binfmt_misc is mounted (the lab registers its own qemu-user there); amd64-only
# labs skip it.
set -eu

native_arch() {
    if command -v dpkg >/dev/null 2>&1; then
        dpkg --print-architecture
        return
    fi
    case "$(uname -m)" in
        x86_64) echo amd64 ;;
        aarch64 | arm64) echo arm64 ;;
        armv7l | armv6l) echo armhf ;;
        *) uname -m ;;
    esac
}

# The qemu handler that runs binaries of one Debian architecture.
qemu_handler() {
    case "$1" in
        arm64) echo qemu-aarch64 ;;
        armhf) echo qemu-arm ;;
        amd64) echo qemu-x86_64 ;;
        *)
            echo "engine: ERROR: LAB_ARCH/LAB_WORKER_ARCHS names '$1'; the lab runs amd64, arm64 or armhf." >&2
            exit 1
            ;;
    esac
}

apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "engine: installing Debian packages:$1"
        apt-get update -qq
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $1 >/dev/null
    else
        echo "engine: ERROR: missing:$1. Install them (Debian: sudo apt-get install$1)$2," \
             "and run make again." >&2
        exit 1
    fi
}

need_apt=""
command -v docker >/dev/null 2>&1 || need_apt="$need_apt docker.io"
command -v debootstrap >/dev/null 2>&1 || need_apt="$need_apt debootstrap"
command -v ssh >/dev/null 2>&1 || need_apt="$need_apt openssh-client"
if ! docker info >/dev/null 2>&1 && ! command -v dockerd >/dev/null 2>&1; then
    case "$need_apt" in *docker.io*) ;; *) need_apt="$need_apt docker.io" ;; esac
fi

if [ -n "$need_apt" ]; then
    apt_install "$need_apt" ", make sure 'docker info' works for this user"
fi

# --- emulated architectures ------------------------------------------------------
# The lab runs emulated nodes under a qemu-user of its own, which python -m
# lab fetches and registers with binfmt_misc (lab/images.py, lab_qemu):
# Debian 12's qemu-user-static cannot run trixie's systemd. Here binfmt_misc
# is only made sure of.
native=$(native_arch)
emulated=""
for arch in ${LAB_ARCH:-} $(echo "${LAB_WORKER_ARCHS:-}" | tr ',' ' '); do
    [ "$arch" = "$native" ] && continue
    qemu_handler "$arch" >/dev/null
    emulated=yes
done

if [ -n "$emulated" ]; then
    binfmt=/proc/sys/fs/binfmt_misc
    # The handlers live in the kernel's binfmt_misc file system; a machine
    # without systemd (a container, a CI runner) may not have it mounted, and
    # then registering them fails silently.
    if [ ! -e "$binfmt/register" ]; then
        if [ "$(id -u)" = 0 ]; then
            echo "engine: mounting binfmt_misc at $binfmt"
            mount -t binfmt_misc binfmt_misc "$binfmt"
        else
            echo "engine: ERROR: binfmt_misc is not mounted, so emulated ARM nodes cannot run." \
                 "Run: sudo mount -t binfmt_misc binfmt_misc $binfmt, and run make again." >&2
            exit 1
        fi
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
