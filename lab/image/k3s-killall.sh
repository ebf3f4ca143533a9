#!/bin/sh
# LAB STAND-IN for /usr/local/bin/k3s-killall.sh, which k3s's install.sh
# writes: stop every k3s unit, then kill the containerd shims and everything
# under them (the pods), then unmount /run/k3s. (The real one also removes CNI
# interfaces and KUBE-/CNI-/flannel iptables rules, which the lab has none of.)
[ "$(id -u)" -eq 0 ] || exec sudo "$0" "$@"

for service in /etc/systemd/system/k3s*.service; do
    [ -s "$service" ] && systemctl stop "$(basename "$service")"
done

pstree() {
    for pid in "$@"; do
        echo "$pid"
        for child in $(ps -e -o ppid= -o pid= | awk -v p="$pid" '$1 == p {print $2}'); do
            pstree "$child"
        done
    done
}

# containerd (a child of k3s that outlives `systemctl stop`): its socket here.
rm -f /run/k3s/containerd/containerd.sock

shims=$(ps -e -o pid= -o args= | awk '/k3s\/data\/[^\/]*\/bin\/containerd-shim/ {print $1}')
[ -n "$shims" ] && kill -9 $(pstree $shims) 2>/dev/null

awk '$2 ~ "^/run/k3s" {print $2}' /proc/self/mounts | sort -r | xargs -r -n 1 umount
exit 0
