#!/bin/sh
# The survey that validation sends a worker (facts/survey.py HostSurvey,
# deploys/library/validation/survey.py): everything it reads from worker1.distcc.internal, here in a
# lab cluster of a builder and two workers with default settings.
#
# Validation sends it as ONE command line of 5232 characters (run by sudo sh -c). This file is that
# command laid out to be read: only spaces became line breaks, where a newline means what the space
# did (inside the sh -c '...' scripts too), and the indentation and the # lines are added. Take
# those out and join the lines with one space each, and it is the command, character for character.
# Each section prints '##survey NAME', then the lines facts/survey.py parses with that fact's own
# parser.
#
# Generated, do not edit: make survey-docs (python -m deploys.library.survey_docs).
# tests/unit/test_survey_script.py fails when this file is not what the code sends, and make unit
# runs shellcheck -s sh on it: a finding that stands has its disable directive, with the reason,
# from where that command is defined.
#
# HostSurvey's arguments, as validation's survey_arguments gives them:
#   names: builder.distcc.internal
#   port: 3632
#   k3s_units: k3s k3s-server k3s-agent
#   builder_peer: builder.distcc.internal
#   log_dir: /var/log/distccd

# Prelude: distcc's unit and the k3s units with a unit file, one systemctl show, into $units
k=;
for u in k3s.service k3s-server.service k3s-agent.service ; do
  for d in /etc/systemd/system.control /run/systemd/system.control /run/systemd/transient /run/systemd/generator.early /etc/systemd/system /etc/systemd/system.attached /run/systemd/system /run/systemd/system.attached /run/systemd/generator /usr/local/lib/systemd/system /lib/systemd/system /usr/lib/systemd/system /run/systemd/generator.late ; do
    if [ -e "$d/$u" ] || [ -L "$d/$u" ]; then k="$k $u"; break; fi;
  done;
done;
# shellcheck disable=SC2086 # unit names, one word each: settings allow only [A-Za-z0-9@._-]
units=$(systemctl show distcc.service $k -p Id -p LoadState -p ActiveState -p SubState -p MainPID -p User -p ExecStart -p UnitFileState -p SourcePath 2>/dev/null);

# Prelude: the IPv4 addresses of every name the sections look up, each looked up once, into $A
nl=$(printf '\n_');
nl=${nl%_};
A=;
# shellcheck disable=SC2043 # one name here; the loop takes as many names as it is given
for n in builder.distcc.internal ; do
  r=' ';
  for w in $(getent ahostsv4 "$n" 2>/dev/null); do
    case "$w" in *[!0-9.]*) ;; *) case "$r" in *" $w "*) ;; *) r="$r$w ";; esac;; esac;
  done;
  A="$A$nl$n$r";
done;

# The sections are the facts' own commands: only $units, $A and $nl stay set
unset k u d n r w;

# processes: every process: pid, parent, user, age, name and arguments (ps)
echo '##survey processes';
( ps -eo pid=,ppid=,user:32=,etimes=,comm=,args= 2>/dev/null || true ) 2>/dev/null;

# listening: the TCP sockets listening on distccd's port, with the owning process (ss)
echo '##survey listening';
( ss -Hltnp 'sport = :3632' 2>/dev/null || true ) 2>/dev/null;

# memory_available: MemAvailable in /proc/meminfo, in bytes
echo '##survey memory_available';
(
  while read -r k v _; do
    [ "$k" = MemAvailable: ] && printf '%s\n' $((v * 1024)) && break;
  done </proc/meminfo;
  true
) 2>/dev/null;

# identity: the userland's architecture (dpkg) and the kernel's machine (uname -m)
echo '##survey identity';
(
  printf "arch %s\n" "$(dpkg --print-architecture 2>/dev/null)";
  printf "kernel %s\n" "$(uname -m 2>/dev/null)"
) 2>/dev/null;

# names: the hostname, the FQDN (hostname -f), and the addresses each peer's name resolves to ($A)
echo '##survey names';
(
  read -r h </proc/sys/kernel/hostname;
  printf "hostname %s\n" "$h";
  printf "fqdn %s\n" "$(hostname -f 2>/dev/null)";
  # shellcheck disable=SC2043 # one name here; the loop takes as many names as it is given
  for n in builder.distcc.internal ; do
    case "$A$nl" in *"$nl$n "*) x=${A#*"$nl$n "}; x=${x%%"$nl"*};; *) x=;; esac;
    printf "resolves %s %s\n" "$n" "$x";
  done
) 2>/dev/null;

# resources: the CPUs this shell may run on, memory, global IPv4 addresses
echo '##survey resources';
(
  n=$(c=;
    while IFS=': 	' read -r k v _; do
      [ "$k" = Cpus_allowed_list ] && c=$v && break;
    done </proc/self/status;
    [ -n "$c" ] || exec nproc;
    n=0;
    IFS=,;
    for r in $c; do
      case "$r" in *-*) n=$((n + ${r#*-} - ${r%-*} + 1));; *) n=$((n + 1));; esac;
    done;
    echo $n);
  printf 'cpus %s\n' "$n";
  while read -r k v _; do
    [ "$k" = MemTotal: ] && printf 'memory %s\n' $((v * 1024)) && break;
  done </proc/meminfo;
  true;
  ip -4 -o addr show scope global 2>/dev/null |
    while read -r _ d _ a _; do printf 'address %s %s\n' "$d" "$a"; done;
  true
) 2>/dev/null;

# builder_route: the builder's address, the route to it (ip route get) and its device's MTU
echo '##survey builder_route';
(
  n=builder.distcc.internal ;
  case "$A$nl" in *"$nl$n "*) x=${A#*"$nl$n "}; x=${x%%"$nl"*};; *) x=;; esac;
  a=${x%% *};
  r=;
  d=;
  m=;
  [ -n "$a" ] && r=$(ip -o route get "$a" 2>/dev/null | { IFS= read -r l; printf %s "$l"; });
  case "$r" in *" dev "*) d=${r##* dev }; d=${d%% *};; esac;
  [ -n "$d" ] && read -r m 2>/dev/null </sys/class/net/"$d"/mtu ;
  printf "peer %s\naddress %s\n" "$n" "$a";
  if [ -n "$a" ]; then printf "route %s\n" "$r"; [ -n "$d" ] && printf "linkmtu %s\n" "$m"; fi ;
  true
) 2>/dev/null;

# distccd_access: what distccd needs, tried as its user: its whitelist and its log
echo '##survey distccd_access';
(
  # shellcheck disable=SC2016 # for sh as user distccd: $1 is the log directory
  runuser -u distccd -- sh -c ' [ -d /usr/lib/distcc ] &&
      ! { [ -r /usr/lib/distcc ] && [ -x /usr/lib/distcc ]; } &&
      printf "denied read %s %s\n" /usr/lib/distcc "$(stat -c "%U %a" /usr/lib/distcc)";
    for f in "$1" "$1/distccd.log"; do
      [ -e "$f" ] && ! [ -w "$f" ] && printf "denied write %s %s\n" "$f" "$(stat -c "%U %a" "$f")";
    done;
    true' - /var/log/distccd </dev/null
) 2>/dev/null;

# units: $units, distcc's SysV start links and drop-ins (sha256), where k3s-killall.sh is
echo '##survey units';
(
  printf '%s\n' "$units";
  u=distcc.service ;
  for f in /etc/rc[S5].d/S??"${u%.service}"; do [ -e "$f" ] && echo SysVEnabled=yes && break; done;
  for f in /etc/systemd/system/"$u".d/*.conf; do
    [ -f "$f" ] && printf 'DropIn %s\n' "$(sha256sum "$f")";
  done ;
  for f in /usr/local/bin/k3s-killall.sh /opt/bin/k3s-killall.sh; do
    [ -x "$f" ] && printf 'Killall %s\n' "$f" && break;
  done
) 2>/dev/null;

# masquerade: the links in /usr/lib/distcc (distccd's whitelist) and the GCC compilers in /usr/bin
echo '##survey masquerade';
(
  d=/usr/lib/distcc;
  [ -x /usr/bin/distcc ] && echo distcc;
  [ -d "$d" ] && {
    echo dir;
    find "$d" -mindepth 1 -maxdepth 1 \( -type l -printf 'link %f %l\n' \) -o -printf 'other %f\n';
  };
  for f in /usr/bin/*; do
    case "${f##*/}" in *gcc*|*g++*|cc|c++) [ -x "$f" ] && printf "compiler %s\n" "${f##*/}";; esac;
  done;
  true
) 2>/dev/null;

# distccd_tmp: free room in distccd's /tmp, as distccd sees it (/proc/PID/root), or the host's
echo '##survey distccd_tmp';
(
  case "$units" in
    *MainPID=*) p=${units#*MainPID=}; p=${p%%[!0-9]*};;
    *) p=$(systemctl show distcc.service -p MainPID --value 2>/dev/null);;
  esac;
  if [ "${p:-0}" -gt 0 ] 2>/dev/null && [ -d "/proc/$p/root/tmp" ]; then
    echo "where distccd";
    t="/proc/$p/root/tmp";
  else
    echo 'where host';
    t=/tmp;
  fi;
  stat -f -c 'statfs %S %b %a %c %d' "$t"
) 2>/dev/null;

# compilers: every GCC driver on PATH: the binary distccd runs, its version and target
echo '##survey compilers';
(
  n=$(find /usr/local/bin /usr/bin -maxdepth 1 -regextype posix-extended -regex '.*/((cc|c\+\+)|([a-z0-9_]+-linux-gnu[a-z]*-)?(gcc|g\+\+)(-[0-9]+)?)' -printf '%f ' 2>/dev/null);
  u=' ';
  for c in $n; do case "$u" in *" $c "*) ;; *) u="$u$c ";; esac; done;
  n=$u;
  [ -n "${n# }" ] || exit 0;
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin;
  # shellcheck disable=SC2086 # driver names ([a-z0-9_+-]), one word each; echo joins them
  echo names $n;
  # shellcheck disable=SC2046 # command -v's paths, one word each: none has a space
  p=$(readlink -f $(for c in $n; do command -v "$c"; done));
  # shellcheck disable=SC2086 # readlink's paths, one a line: none has a space
  printf 'path %s\n' $p;
  u=' ';
  for t in $p; do
    case "$u" in *" $t "*) continue;; esac;
    u="$u$t ";
    "$t" -v 2>&1 </dev/null | {
      v=;
      m=;
      while IFS= read -r l; do
        case "$l" in
          'Target: '*) m=${l#Target: };;
          'gcc version '*) v=${l#gcc version }; v=${v%% *};;
        esac;
      done;
      printf "identity %s %s %s\n" "$t" "${v:--}" "${m:--}";
    };
  done
) 2>/dev/null;
true
