"""The cases lab/capture_surveys.py captures: for each, what the node is
like, which node is broken, the script that breaks it (run as root through
`docker exec`), the one that restores it, whether the mode switch heals it
after, and the host data captured with it. Also which cases come from a lab
of their own (LAB_OF_CASES) and how each kind of lab is started (LAB_SETTINGS).

Scripts are str.format()ed with the lab's addresses ({builder}, {worker},
{nobody}) before they run, hence the doubled braces.
"""

from __future__ import annotations

import json

OVERRIDE = "/etc/systemd/system/distcc.service.d/override.conf"
RESTART = " && systemctl daemon-reload && systemctl restart distcc && sleep 1"

MODE_SWITCH = ("deploys/mode_switch.py",)
# The lab image has no firewall tools; Debian's iptables is installed on first use.
IPTABLES = "command -v iptables >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q iptables >/dev/null; "
# The mode switch leaves a running, listening distccd alone; only a forced reset restarts it.
FORCED_RESET = ("deploys/worker_distccd_reset.py", "--data", "distcc_force_restart=True")

DISTCCD_LOG = "/var/log/distccd/distccd.log"
# Docker bind-mounts /etc/hosts into the container: it is rewritten in place, never moved.
HOSTS_RESTORE = "if [ -f /root/hosts.capture ]; then cat /root/hosts.capture > /etc/hosts && rm /root/hosts.capture; fi"
# Packages a case installs are purged again, exactly those (apt-get remove of the one asked for
# would leave what it pulled in, and the mode switch would whitelist its compilers).
PACKAGES_LIST = "dpkg-query -W -f '${{db:Status-Abbrev}} ${{Package}}\\n' | awk '/^ii/ {{print $2}}' | sort"
PACKAGES_BEFORE = PACKAGES_LIST + " > /root/packages.capture && "
PACKAGES_RESTORED = (
    PACKAGES_LIST + " | comm -13 /root/packages.capture - | xargs -r env DEBIAN_FRONTEND=noninteractive "
    "apt-get purge -y -q >/dev/null 2>&1; rm -f /root/packages.capture"
)

CROSS = {"distcc_cross_compilers": ["aarch64-linux-gnu-gcc"]}
CROSS_SWITCH = ("deploys/mode_switch.py", "--data", "distcc_cross_compilers=" + json.dumps(CROSS["distcc_cross_compilers"]))
# ccache in front of distcc and pump mode, both on (the builder's profile and packages).
SPEED = {"distcc_ccache": True, "distcc_pump": True}
SPEED_SWITCH = ("deploys/mode_switch.py", "--data", "distcc_ccache=True", "--data", "distcc_pump=True")
PROFILE_KEPT = "cp /home/pi/.profile /home/pi/.profile.capture 2>/dev/null; "
PROFILE_RESTORED = ("if [ -f /home/pi/.profile.capture ]; then mv /home/pi/.profile.capture /home/pi/.profile; "
                    "else rm -f /home/pi/.profile; fi")
# Cases that need the lab in a state of their own first (run before breaking).
PREPARE = {"cross-compiler": (CROSS_SWITCH,), "cross-link-missing": (CROSS_SWITCH,),
           "cross-compiler-missing": (CROSS_SWITCH,),
           **dict.fromkeys(("ccache-pump", "ccache-prefix-overridden", "ccache-dir-unwritable",
                            "ccache-tempdir-missing", "pump-hosts-overridden", "pump-worker-stopped"),
                           (SPEED_SWITCH,))}

# Another program than distccd on distccd's port, on every address.
PORT_HOLDER = (
    "perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(LocalAddr => \"0.0.0.0\", LocalPort => 3632,"
    " Listen => 5, ReuseAddr => 1) or die \"bind: $!\"; sleep 600'"
)

# case: (what the node is like, node role, break script, restore script, heal with the mode switch, host data)
CASES: dict[str, tuple[str, str | None, str, str, bool | tuple, dict]] = {
    "healthy": ("DISTCC BUILD MODE as the mode switch leaves it", None, "", "", False, {}),
    "distccd-stopped": ("worker1: systemctl stop distcc", "worker", "systemctl stop distcc", "", True, {}),
    "port-held-by-perl": (
        "worker1: distccd stopped and a perl listening on 0.0.0.0:3632 (another program on distccd's port)",
        "worker", "systemctl stop distcc && setsid -f " + PORT_HOLDER + " >/dev/null 2>&1 && sleep 1",
        "pkill -f 'LocalPort [=]> 3632'", True, {},
    ),
    "override-removed": (
        "worker1: override.conf deleted, daemon reloaded (distccd keeps running)", "worker",
        f"rm {OVERRIDE} && systemctl daemon-reload", "", True, {},
    ),
    "allow-wrong": (
        "worker1: override edited to --allow 10.9.9.9/32, distccd restarted", "worker",
        f"sed -i 's#--allow [0-9./]*#--allow 10.9.9.9/32#' {OVERRIDE}" + RESTART, "", True, {},
    ),
    "allow-missing": (
        "worker1: override edited to drop --allow, distccd restarted", "worker",
        f"sed -i 's# --allow [0-9./]*##' {OVERRIDE}" + RESTART, "", True, {},
    ),
    "open-insecure-wildcard": (
        "worker1: override edited to --allow 0.0.0.0/0 --enable-tcp-insecure --listen 0.0.0.0, distccd restarted",
        "worker",
        f"sed -i -e 's#--allow [0-9./]*#--allow 0.0.0.0/0 --enable-tcp-insecure#' -e 's#--listen [0-9.]*#--listen 0.0.0.0#' "
        f"{OVERRIDE}" + RESTART, "", True, {},
    ),
    "open-allowed": (
        "worker1: override edited to --allow 0.0.0.0/0, host data distcc_allow_open_ok=True", "worker",
        f"sed -i 's#--allow [0-9./]*#--allow 0.0.0.0/0#' {OVERRIDE}" + RESTART, "", True,
        {"distcc_allow_open_ok": True},
    ),
    "distccd-as-nobody": (
        "worker1: override edited to User=nobody, distccd restarted", "worker",
        f"sed -i 's#^User=distccd#User=nobody#' {OVERRIDE} && chmod 777 /var/log/distccd" + RESTART,
        "chmod 755 /var/log/distccd", (MODE_SWITCH, FORCED_RESET), {},
    ),
    # The amd64 builder's client sends x86_64-linux-gnu-gcc for cc and gcc.
    "whitelist-link-removed": (
        "worker1: rm /usr/lib/distcc/x86_64-linux-gnu-gcc", "worker", "rm /usr/lib/distcc/x86_64-linux-gnu-gcc", "",
        True, {},
    ),
    "unsent-link-removed": (
        "worker1: rm /usr/lib/distcc/gcc (a name the amd64 builder's client never sends)", "worker",
        "rm /usr/lib/distcc/gcc", "", True, {},
    ),
    "whitelist-stray-file": (
        "worker1: a regular file /usr/lib/distcc/stray in the whitelist", "worker",
        "touch /usr/lib/distcc/stray", "rm -f /usr/lib/distcc/stray", False, {},
    ),
    "k3s-started": (
        "worker1: the k3s-agent stand-in started again, with its pods", "worker", "systemctl start k3s-agent",
        "/usr/local/bin/k3s-killall.sh >/dev/null 2>&1", False, {},
    ),
    "k3s-stopped-pods-left": (
        "worker1: k3s-agent started, then stopped with systemctl (KillMode=process: its pods keep running)",
        "worker", "systemctl start k3s-agent && systemctl stop k3s-agent",
        "/usr/local/bin/k3s-killall.sh >/dev/null 2>&1", False, {},
    ),
    "k3s-enabled": (
        "worker1: k3s-agent stopped, no pod, but enabled again (a reboot would start it in build mode)",
        "worker", "systemctl enable --quiet k3s-agent", "systemctl disable --quiet k3s-agent", False, {},
    ),
    "tmpfs-unmounted": ("builder: umount /tmp/kernel-build", "builder", "umount /tmp/kernel-build", "", True, {}),
    "tmpfs-hidden": (
        "builder: a tmpfs mounted on /tmp after the build tmpfs (as Raspberry Pi OS's tmp.mount would), hiding it",
        "builder", "mount -t tmpfs -o size=64m,mode=1777 tmpfs /tmp", "umount /tmp", False, {},
    ),
    "tmpfs-wrong": (
        "builder: tmpfs remounted 1G noexec, chmod 755, its fstab line removed", "builder",
        "mount -o remount,size=1G,noexec /tmp/kernel-build && chmod 755 /tmp/kernel-build "
        "&& cp /etc/fstab /etc/fstab.capture && sed -i '\\#/tmp/kernel-build#d' /etc/fstab",
        "mv /etc/fstab.capture /etc/fstab && chmod 1777 /tmp/kernel-build", True, {},
    ),
    "distccd-on-builder": (
        "builder: a distccd started by hand on 127.0.0.1:3632", "builder",
        "distccd --daemon --allow 127.0.0.1 --listen 127.0.0.1 --port 3632", "", True, {},
    ),
    "profile-removed": (
        "builder: /etc/profile.d/distcc-build.sh deleted", "builder", "rm /etc/profile.d/distcc-build.sh", "", True, {},
    ),
    "path-prepended": (
        "builder: pi's ~/.profile prepends /home/pi/bin", "builder",
        "cp /home/pi/.profile /home/pi/.profile.capture 2>/dev/null; echo 'PATH=\"$HOME/bin:$PATH\"' >> /home/pi/.profile",
        "if [ -f /home/pi/.profile.capture ]; then mv /home/pi/.profile.capture /home/pi/.profile; "
        "else rm -f /home/pi/.profile; fi", False, {},
    ),
    "path-replaced": (
        "builder: pi's ~/.profile sets PATH=/usr/bin:/bin outright", "builder",
        "cp /home/pi/.profile /home/pi/.profile.capture 2>/dev/null; echo 'PATH=/usr/bin:/bin' >> /home/pi/.profile",
        "if [ -f /home/pi/.profile.capture ]; then mv /home/pi/.profile.capture /home/pi/.profile; "
        "else rm -f /home/pi/.profile; fi", False, {},
    ),
    "gcc-shadowed": (
        "builder: a gcc in pi's ~/.local/bin (Debian's ~/.profile puts it before /usr/lib/distcc)", "builder",
        "install -d -o pi -g pi /home/pi/.local/bin && ln -s /usr/bin/gcc /home/pi/.local/bin/gcc",
        "rm -rf /home/pi/.local", False, {},
    ),
    "pip-local-bin": (
        "builder: pi's ~/.local/bin exists (pip install --user), no compiler in it", "builder",
        "install -d -o pi -g pi /home/pi/.local/bin", "rm -rf /home/pi/.local", False, {},
    ),
    "hosts-loopback-builder": (
        "worker1: /etc/hosts starts with '127.0.1.1 builder.distcc.internal builder'", "worker",
        "cp /etc/hosts /root/hosts.capture && (echo '127.0.1.1 builder.distcc.internal builder'; "
        "cat /root/hosts.capture) > /etc/hosts",
        HOSTS_RESTORE,
        False, {},
    ),
    "stock-short-hostname": (
        "worker1: stock Raspberry Pi OS naming, '127.0.1.1 worker1' first in /etc/hosts (hostname -f has no dot)",
        "worker",
        "cp /etc/hosts /root/hosts.capture && (echo '127.0.1.1 worker1'; cat /root/hosts.capture) > /etc/hosts",
        HOSTS_RESTORE,
        False, {},
    ),
    "distcc-hosts-env": (
        "builder: pi's ~/.profile exports DISTCC_HOSTS=localhost", "builder",
        "cp /home/pi/.profile /home/pi/.profile.capture 2>/dev/null; echo 'export DISTCC_HOSTS=localhost' >> /home/pi/.profile",
        "if [ -f /home/pi/.profile.capture ]; then mv /home/pi/.profile.capture /home/pi/.profile; "
        "else rm -f /home/pi/.profile; fi", False, {},
    ),
    "hosts-file-wrong": (
        "builder: pi's ~/.distcc/hosts lists worker1 only", "builder",
        "sed -i '/worker2/d' /home/pi/.distcc/hosts", "", True, {},
    ),
    "build-user-missing": (
        "builder: host data distcc_build_user=kbuild, a user that does not exist", None, "", "", False,
        {"distcc_build_user": "kbuild"},
    ),
    "mtu-worker": ("worker1: ip link set eth0 mtu 1400", "worker", "ip link set eth0 mtu 1400",
                   "ip link set eth0 mtu 1500", False, {}),
    "mtu-builder": ("builder: ip link set eth0 mtu 1400", "builder", "ip link set eth0 mtu 1400",
                    "ip link set eth0 mtu 1500", False, {}),
    "sent-compiler-missing": (
        "worker1: /usr/bin/x86_64-linux-gnu-gcc (what the amd64 builder sends for cc and gcc) moved away",
        "worker", "mv /usr/bin/x86_64-linux-gnu-gcc /root/x86_64-linux-gnu-gcc.capture",
        "if [ -L /root/x86_64-linux-gnu-gcc.capture ]; then mv /root/x86_64-linux-gnu-gcc.capture "
        "/usr/bin/x86_64-linux-gnu-gcc; fi", False, {},
    ),
    # Another release's gcc of Debian's own: trixie (gcc 14) has gcc-13, bookworm (gcc 12) had gcc-11.
    "gcc-mismatch": (
        "worker1: gcc-13 from Debian (trixie's gcc is 14) installed and linked as /usr/local/bin/gcc", "worker",
        PACKAGES_BEFORE + "DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc-13 >/dev/null 2>&1 "
        "&& ln -sf /usr/bin/gcc-13 /usr/local/bin/gcc",
        "rm -f /usr/local/bin/gcc && " + PACKAGES_RESTORED, True, {},
    ),
    "dns-worker": (
        "worker1: /etc/nsswitch.conf hosts: files only (other nodes' names no longer resolve)", "worker",
        "cp /etc/nsswitch.conf /etc/nsswitch.capture && sed -i 's/^hosts:.*/hosts: files/' /etc/nsswitch.conf",
        "mv /etc/nsswitch.capture /etc/nsswitch.conf", False, {},
    ),
    "dns-builder": (
        "builder: /etc/nsswitch.conf hosts: files only (the workers' names no longer resolve)", "builder",
        "cp /etc/nsswitch.conf /etc/nsswitch.capture && sed -i 's/^hosts:.*/hosts: files/' /etc/nsswitch.conf",
        "mv /etc/nsswitch.capture /etc/nsswitch.conf", False, {},
    ),
    "noroute-worker": (
        "worker1: ip route add unreachable BUILDER/32 (no route to the builder)", "worker",
        "ip route add unreachable {builder}/32", "ip route del unreachable {builder}/32", False, {},
    ),
    "noroute-builder": (
        "builder: ip route add unreachable WORKER1/32 (no route to worker1)", "builder",
        "ip route add unreachable {worker}/32", "ip route del unreachable {worker}/32", False, {},
    ),
    "firewall-drop": (
        "worker1: iptables -I INPUT -p tcp --dport 3632 -j DROP (port filtered)", "worker",
        IPTABLES + "iptables -I INPUT -p tcp --dport 3632 -j DROP", "iptables -D INPUT -p tcp --dport 3632 -j DROP", False, {},
    ),
    "firewall-reject": (
        "worker1: iptables -I INPUT -p tcp --dport 3632 -j REJECT --reject-with tcp-reset", "worker",
        IPTABLES + "iptables -I INPUT -p tcp --dport 3632 -j REJECT --reject-with tcp-reset",
        "iptables -D INPUT -p tcp --dport 3632 -j REJECT --reject-with tcp-reset", False, {},
    ),
    "tmpfs-filling": (
        "builder: a 208M file in the 256M build tmpfs", "builder",
        "fallocate -l 208M /tmp/kernel-build/filling", "rm -f /tmp/kernel-build/filling", False, {},
    ),
    "tmpfs-full": (
        "builder: a 250M file in the 256M build tmpfs", "builder",
        "fallocate -l 250M /tmp/kernel-build/full", "rm -f /tmp/kernel-build/full", False, {},
    ),
    "tmpfs-inodes": (
        "builder: build tmpfs remounted with nr_inodes=500, 495 files created in it", "builder",
        "df -Pi /tmp/kernel-build | awk 'NR == 2 {{print $2}}' > /root/nr_inodes.capture && "
        "mount -o remount,nr_inodes=500 /tmp/kernel-build && mkdir /tmp/kernel-build/many && "
        "cd /tmp/kernel-build/many && seq 1 494 | xargs touch",
        "rm -rf /tmp/kernel-build/many && mount -o remount,nr_inodes=$(cat /root/nr_inodes.capture) /tmp/kernel-build "
        "&& rm /root/nr_inodes.capture", False, {},
    ),
    "jobs-150": (
        "all nodes as they are, host data distcc_jobs=150 (more jobs than memory allows for)", None, "", "", False,
        {"distcc_jobs": 150},
    ),
    "jobs-200": (
        "all nodes as they are, host data distcc_jobs=200 (far more jobs than memory allows for)", None, "", "", False,
        {"distcc_jobs": 200},
    ),
    "distccd-tmp-small": (
        "worker1: a 100M tmpfs mounted on /tmp inside distccd's mount namespace (as TemporaryFileSystem= gives)",
        "worker",
        "nsenter --target $(systemctl show distcc.service -p MainPID --value) --mount mount -t tmpfs -o size=100M tmpfs /tmp",
        "", (FORCED_RESET,), {},
    ),
    "distccd-tmp-full": (
        "worker1: a 16M tmpfs mounted on /tmp inside distccd's mount namespace", "worker",
        "nsenter --target $(systemctl show distcc.service -p MainPID --value) --mount mount -t tmpfs -o size=16M tmpfs /tmp",
        "", (FORCED_RESET,), {},
    ),
    "firewall-reject-icmp": (
        "worker1: iptables -I INPUT -p tcp --dport 3632 -j REJECT --reject-with icmp-host-unreachable", "worker",
        IPTABLES + "iptables -I INPUT -p tcp --dport 3632 -j REJECT --reject-with icmp-host-unreachable",
        "iptables -D INPUT -p tcp --dport 3632 -j REJECT --reject-with icmp-host-unreachable", False, {},
    ),
    "client-removed": (
        "builder: apt-get remove distcc (the client, its masquerade links and unit)", "builder",
        "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q distcc >/dev/null", "", True, {},
    ),
    "worker-distcc-removed": (
        "worker1: apt-get remove distcc (distccd, its unit and the whitelist go)", "worker",
        "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q distcc >/dev/null", "", True, {},
    ),
    "containerd-shims": (
        "worker1: k3s stopped, but a process named containerd-shim still runs (a pod k3s-killall.sh would stop)",
        "worker",
        "cp /bin/sleep /usr/local/bin/containerd-shim && "
        "setsid /usr/local/bin/containerd-shim 900 >/dev/null 2>&1 < /dev/null & echo $! > /root/shim.pid",
        "kill $(cat /root/shim.pid) && rm /root/shim.pid /usr/local/bin/containerd-shim", False, {},
    ),
    "fqdn-duplicate": (
        "worker2: hostname set to worker1.distcc.internal, worker1's FQDN", "worker2",
        "hostname worker1.distcc.internal", "hostname worker2", False, {},
    ),
    "fqdn-missing": (
        "worker1: hostname set to localhost (hostname -f gives no domain)", "worker",
        "hostname localhost", "hostname worker1", False, {},
    ),
    "worker-unreachable": (
        "worker2: sshd stopped (pyinfra cannot connect; distccd still serves)", "worker2",
        "systemctl stop ssh", "systemctl start ssh", False, {},
    ),
    "stock-healthy": (
        "stock Raspberry Pi OS Lite nodes (LAB_FLAVOR=stock: short hostnames on the 127.0.1.1 line, first user ada "
        "with ~/.local/bin first on its login PATH) in DISTCC BUILD MODE as the mode switch leaves it",
        None, "", "", False, {},
    ),
    # What the next boot mounts is judged as the mode switch writes it.
    "fstab-edited": (
        "builder: the tmpfs line in /etc/fstab edited to size=64M,noexec (the mounted tmpfs unchanged)", "builder",
        "sed -i 's#^\\(tmpfs /tmp/kernel-build tmpfs \\)[^ ]*#\\1size=64M,noexec#' /etc/fstab",
        "", True, {},
    ),
    # A name that resolves, but to an address of the lab's subnet that no node has.
    # Docker bind-mounts /etc/hosts into the container: rewritten in place (cat >), never moved.
    "hosts-wrong-builder": (
        "worker1: /etc/hosts names builder.distcc.internal at {nobody} (an address of the lab's subnet no node has)",
        "worker",
        "cp /etc/hosts /root/hosts.capture && grep -v builder /root/hosts.capture > /etc/hosts && "
        "echo '{nobody} builder.distcc.internal builder' >> /etc/hosts", HOSTS_RESTORE, False, {},
    ),
    "hosts-wrong-worker": (
        "builder: /etc/hosts names worker1.distcc.internal at {nobody} (an address of the lab's subnet no node has)",
        "builder",
        "cp /etc/hosts /root/hosts.capture && grep -v worker1 /root/hosts.capture > /etc/hosts && "
        "echo '{nobody} worker1.distcc.internal worker1' >> /etc/hosts", HOSTS_RESTORE, False, {},
    ),
    # What distcc skips in silence when the build user cannot read or write it.
    "client-hosts-unreadable": (
        "builder: chown root:root /home/pi/.distcc/hosts && chmod 600 (the build user pi cannot read its host list)",
        "builder", "chown root:root /home/pi/.distcc/hosts && chmod 600 /home/pi/.distcc/hosts", "", True, {},
    ),
    "client-dir-root": (
        "builder: chown root:root /home/pi/.distcc (the build user pi cannot write its distcc directory)", "builder",
        "stat -c '%U:%G' /home/pi/.distcc > /root/distcc-dir.capture && chown root:root /home/pi/.distcc",
        "chown \"$(cat /root/distcc-dir.capture)\" /home/pi/.distcc && rm /root/distcc-dir.capture", False, {},
    ),
    "profile-unreadable": (
        "builder: chmod 600 /etc/profile.d/distcc-build.sh (pi's login shell skips it)", "builder",
        "chmod 600 /etc/profile.d/distcc-build.sh", "", True, {},
    ),
    "client-log-unwritable": (
        "builder: /home/pi/.distcc/client.log (DISTCC_LOG) owned by root, mode 600", "builder",
        "touch /home/pi/.distcc/client.log && chown root:root /home/pi/.distcc/client.log "
        "&& chmod 600 /home/pi/.distcc/client.log", "rm -f /home/pi/.distcc/client.log", False, {},
    ),
    # What distccd needs, as its own user.
    "whitelist-unreadable": (
        "worker1: chmod 700 /usr/lib/distcc (user distccd cannot read its whitelist)", "worker",
        "chmod 700 /usr/lib/distcc", "chmod 755 /usr/lib/distcc", False, {},
    ),
    "distccd-log-unwritable": (
        "worker1: /var/log/distccd/distccd.log owned by root, mode 600, then systemctl restart distcc", "worker",
        f"stat -c '%U:%G %a' {DISTCCD_LOG} > /root/distccd-log.capture && chown root:root {DISTCCD_LOG} "
        f"&& chmod 600 {DISTCCD_LOG}" + RESTART,
        f"read -r o m < /root/distccd-log.capture && chown \"$o\" {DISTCCD_LOG} && chmod \"$m\" {DISTCCD_LOG} "
        "&& rm /root/distccd-log.capture" + RESTART, False, {},
    ),
    # Prepared by a mode switch with CROSS (PREPARE): gcc-aarch64-linux-gnu on every node, where it stays:
    # these cases come after every other of the usual lab.
    "cross-compiler": (
        "all nodes: mode switch with distcc_cross_compilers=['aarch64-linux-gnu-gcc'] (an amd64 lab's cross build)",
        None, "", "", False, CROSS,
    ),
    "cross-link-missing": (
        "builder: rm /usr/lib/distcc/aarch64-linux-gnu-gcc (the cross compiler stays installed)", "builder",
        "rm /usr/lib/distcc/aarch64-linux-gnu-gcc", "update-distcc-symlinks", False, CROSS,
    ),
    # The release's own cross gcc goes too (gcc-14-aarch64-linux-gnu on trixie, gcc-12-... on bookworm):
    # without it, the driver's link is left dangling.
    "cross-compiler-missing": (
        "builder: apt-get remove gcc-aarch64-linux-gnu and the release's gcc-N-aarch64-linux-gnu (gcc-14 on trixie; "
        "named in distcc_cross_compilers)", "builder",
        "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q gcc-aarch64-linux-gnu "
        "$(dpkg-query -W -f '${{db:Status-Abbrev}} ${{Package}}\\n' 'gcc-[0-9]*-aarch64-linux-gnu' 2>/dev/null "
        "| awk '/^ii/ {{print $2}}') >/dev/null", "", (CROSS_SWITCH,), CROSS,
    ),
    # Prepared by a mode switch with SPEED (PREPARE); the lab stays that way.
    "ccache-pump": (
        "all nodes: mode switch with distcc_ccache=True and distcc_pump=True", None, "", "", False, SPEED,
    ),
    "ccache-prefix-overridden": (
        "builder: pi's ~/.profile exports CCACHE_PREFIX= (ccache would compile on the builder)", "builder",
        PROFILE_KEPT + "echo 'export CCACHE_PREFIX=' >> /home/pi/.profile", PROFILE_RESTORED, False, SPEED,
    ),
    "ccache-dir-unwritable": (
        "builder: chown -R root /home/pi/.ccache", "builder",
        "chown -R root:root /home/pi/.ccache", "chown -R pi:pi /home/pi/.ccache", False, SPEED,
    ),
    # As after a reboot with /etc/tmpfiles.d/distcc-ccache.conf gone.
    "ccache-tempdir-missing": (
        "builder: rm -rf /run/distcc-ccache (ccache's temporary directory)", "builder",
        "rm -rf /run/distcc-ccache", "", (SPEED_SWITCH,), SPEED,
    ),
    "pump-hosts-overridden": (
        "builder: pi's ~/.profile exports DISTCC_PUMP_HOSTS=localhost", "builder",
        PROFILE_KEPT + "echo 'export DISTCC_PUMP_HOSTS=localhost' >> /home/pi/.profile", PROFILE_RESTORED,
        False, SPEED,
    ),
    "pump-worker-stopped": (
        "worker1: systemctl stop distcc, with distcc_pump", "worker", "systemctl stop distcc", "",
        (SPEED_SWITCH,), SPEED,
    ),
    # Captured from an armhf lab (ARMHF_CASES): 32-bit Raspberry Pi OS under a 64-bit kernel, as a Pi 4
    # boots it by default, made by a uname that says aarch64 for -m (the survey runs as root: sudo's
    # secure_path puts /usr/local/bin before /bin).
    "kernel-arch": (
        "builder: /usr/local/bin/uname prints aarch64 for `uname -m` and runs /bin/uname otherwise "
        "(32-bit Raspberry Pi OS on a 64-bit kernel)", "builder",
        "printf '%s\\n' '#!/bin/sh' '[ \"$*\" = -m ] && exec echo aarch64' 'exec /bin/uname \"$@\"' "
        "> /usr/local/bin/uname && chmod 755 /usr/local/bin/uname", "rm -f /usr/local/bin/uname", False, {},
    ),
    # Captured from a lab of mixed releases (MIXED_RELEASE_CASES): a cluster half-way through an upgrade.
    "release-mismatch": (
        "bookworm builder and worker1, trixie worker2 (LAB_SUITE=bookworm LAB_WORKER_SUITES=bookworm,trixie), "
        "in DISTCC BUILD MODE as the mode switch leaves it", None, "", "", False, {},
    ),
}
# Cases captured from a lab of their own, keyed on what its nodes are (lab_kind);
# every other case from the usual lab: fqdn nodes of one release, this machine's architecture.
STOCK_CASES = {"stock-healthy"}
ARMHF_CASES = {"kernel-arch"}
MIXED_RELEASE_CASES = {"release-mismatch"}
LAB_OF_CASES = {
    **dict.fromkeys(STOCK_CASES, "stock"), **dict.fromkeys(ARMHF_CASES, "armhf"),
    **dict.fromkeys(MIXED_RELEASE_CASES, "mixed-release"),
}
# How each kind of lab is started (python3 -m lab up with these set).
LAB_SETTINGS = {
    "usual": "LAB_FLAVOR, LAB_ARCH, LAB_SUITE and LAB_WORKER_SUITES unset",
    "stock": "LAB_FLAVOR=stock",
    "armhf": "LAB_ARCH=armhf LAB_WORKERS=1 (emulated: LAB_ARCH=armhf LAB_WORKERS=1 lab/ensure_engine.sh as root first)",
    "mixed-release": "LAB_SUITE=bookworm LAB_WORKER_SUITES=bookworm,trixie",
}

