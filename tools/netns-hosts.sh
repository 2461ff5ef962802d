#!/usr/bin/env bash
# Separate "hosts" on one machine for the multi-host tests: N network namespaces joined by a
# bridge, each with its own address and its own sshd, plus the ssh_config and hostfile that
# `lmtrain launch` needs to reach them. The launcher runs in the root namespace, which joins the
# bridge with the subnet's .1 address. Run as root (ip netns, sshd).
#
#   tools/netns-hosts.sh up N DIR [--subnet A.B.C] [--no-loopback]
#       N namespaces (1..50) and everything under DIR (a new or empty folder):
#         DIR/hostfile      "A.B.C.K slots=1" per host (K = 2 .. N+1)
#         DIR/ssh_config    for ssh -F / lmtrain launch --ssh-config; it also knows each host by
#                           its namespace name (an ssh alias: NETNS_K in DIR/state)
#         DIR/state         KEY=VALUE lines (NETNS_K, ADDR_K, VETH_K, LAUNCHER_ADDR, ...)
#       --subnet: the /24 to use (default: the first 10.213.X.0/24, X in 1..254, that no
#       interface of this machine uses; taken under a lock, so parallel runs get different ones).
#       --no-loopback: leave `lo` DOWN in every namespace, so nothing there can use loopback.
#   tools/netns-hosts.sh down DIR            remove what `up` made (sshds, any process left in
#                                            the namespaces, namespaces, veths, bridge)
#   tools/netns-hosts.sh cut DIR HOST        take HOST's link down (its cable pulled)
#   tools/netns-hosts.sh restore DIR HOST    and up again
#   tools/netns-hosts.sh pids DIR HOST       "PID RANK" of every lmtrain worker in HOST's namespace
#   tools/netns-hosts.sh exec DIR HOST CMD.. run CMD in HOST's namespace
# HOST is a host's index (1..N), its address or its namespace name. Exit code 2 for bad usage.
set -euo pipefail

die() { echo "netns-hosts.sh: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 1 ] || usage
command=$1; shift

load_state() {
  local dir=$1
  [ -f "$dir/state" ] || die "$dir/state not found: was '$dir' made by 'netns-hosts.sh up'?"
  # shellcheck disable=SC1091
  . "$dir/state"
}

# Index (1..NUM_HOSTS) of HOST given as index, address or namespace name.
host_index() {
  local host=$1 k
  for ((k = 1; k <= NUM_HOSTS; k++)); do
    local ns_var="NETNS_$k" addr_var="ADDR_$k"
    if [ "$host" = "$k" ] || [ "$host" = "${!ns_var}" ] || [ "$host" = "${!addr_var}" ]; then
      echo "$k"
      return
    fi
  done
  die "no host '$host' in $STATE_DIR (hosts: 1..$NUM_HOSTS, their addresses or namespace names)"
}

down() {
  local dir=$1 k
  [ -f "$dir/state" ] || return 0
  load_state "$dir"
  for ((k = 1; k <= NUM_HOSTS; k++)); do
    local ns_var="NETNS_$k" veth_var="VETH_$k"
    local ns=${!ns_var} veth=${!veth_var}
    if [ -f "$dir/h$k/sshd.pid" ]; then kill "$(cat "$dir/h$k/sshd.pid")" 2>/dev/null || true; fi
    if ip netns list | grep -qw "^$ns"; then
      # Whatever is still in the namespace was started there by this run (sshd, agents, workers).
      local pids
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      if [ -n "$pids" ]; then
        kill -TERM $pids 2>/dev/null || true
        sleep 0.2
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
      fi
      ip netns del "$ns" 2>/dev/null || true
    fi
    ip link del "$veth" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  rm -f "$dir/state"
}

# First 10.213.X (X in 1..254) that no interface here has an address in.
free_subnet() {
  local used x
  used=$(ip -4 -o addr show | awk '{print $4}')
  for ((x = 1; x <= 254; x++)); do
    if ! grep -q "^10\.213\.$x\." <<<"$used"; then
      echo "10.213.$x"
      return
    fi
  done
  die "no free 10.213.X.0/24 on this machine; pass --subnet A.B.C"
}

up() {
  [ $# -ge 2 ] || usage
  local num_hosts=$1 dir=$2 subnet="" loopback=1
  shift 2
  while [ $# -gt 0 ]; do
    case "$1" in
      --subnet) [ $# -ge 2 ] || die "--subnet needs a value like 10.213.7"; subnet=$2; shift 2 ;;
      --no-loopback) loopback=0; shift ;;
      *) die "up: unknown option '$1' (expected --subnet A.B.C or --no-loopback)" ;;
    esac
  done
  [[ "$num_hosts" =~ ^[0-9]+$ ]] && [ "$num_hosts" -ge 1 ] && [ "$num_hosts" -le 50 ] ||
    die "up: N must be a number of hosts from 1 to 50 (got '$num_hosts')"
  [ -z "$subnet" ] || [[ "$subnet" =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] ||
    die "--subnet '$subnet' must be the first three numbers of a /24, like 10.213.7"
  [ "$(id -u)" = 0 ] || die "up: needs root (network namespaces and sshd)"
  command -v ip >/dev/null || die "up: 'ip' not found (apt-get install iproute2)"
  [ -x /usr/sbin/sshd ] || die "up: /usr/sbin/sshd not found (apt-get install openssh-server)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ ! -e "$dir/state" ] || die "up: $dir/state exists: run 'netns-hosts.sh down $dir' first"

  # A prefix of its own per run: interface names have at most 15 characters.
  local id
  id="lmt$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
  local bridge="${id}b"

  # The subnet is chosen and the bridge given its .1 under one lock, so two runs starting
  # together do not pick the same /24.
  exec 9>/tmp/lmt-netns-hosts.lock
  flock 9
  [ -n "$subnet" ] || subnet=$(free_subnet)
  if ip -4 -o addr show | awk '{print $4}' | grep -q "^${subnet//./\\.}\."; then
    die "up: $subnet.0/24 is already in use on this machine; pick another --subnet"
  fi
  {
    echo "NUM_HOSTS=$num_hosts"
    echo "BRIDGE=$bridge"
    echo "SUBNET=$subnet"
    echo "LAUNCHER_ADDR=$subnet.1"
    echo "LOOPBACK=$loopback"
    echo "STATE_DIR=$dir"
  } >"$dir/state"
  trap 'echo "netns-hosts.sh: up failed, removing what was made" >&2; down "$dir"' ERR
  ip link add "$bridge" type bridge
  ip addr add "$subnet.1/24" dev "$bridge"
  ip link set "$bridge" up
  flock -u 9

  mkdir -p /run/sshd
  ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key" <<<y >/dev/null
  local k
  : >"$dir/hostfile"
  for ((k = 1; k <= num_hosts; k++)); do
    local ns="$id-h$k" veth="${id}v$k" addr="$subnet.$((k + 1))" hdir="$dir/h$k"
    {
      echo "NETNS_$k=$ns"
      echo "ADDR_$k=$addr"
      echo "VETH_$k=$veth"
    } >>"$dir/state"
    ip netns add "$ns"
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip link set "$veth" master "$bridge" up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    [ "$loopback" = 0 ] || ip -n "$ns" link set lo up
    mkdir -p "$hdir"
    ssh-keygen -q -t ed25519 -N '' -f "$hdir/host_key" <<<y >/dev/null
    cp "$dir/client_key.pub" "$hdir/authorized_keys"
    chmod 600 "$hdir/authorized_keys"
    # Port 22 is free: every namespace has its own ports.
    cat >"$hdir/sshd_config" <<EOF
ListenAddress $addr
Port 22
HostKey $hdir/host_key
AuthorizedKeysFile $hdir/authorized_keys
PidFile $hdir/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
MaxStartups 100
EOF
    ip netns exec "$ns" /usr/sbin/sshd -f "$hdir/sshd_config" -E "$hdir/sshd.log"
    echo "$addr slots=1" >>"$dir/hostfile"
  done
  # Each host also by its namespace name, an ssh alias as many hostfiles use (no DNS knows it).
  : >"$dir/ssh_config"
  for ((k = 1; k <= num_hosts; k++)); do
    printf 'Host %s\n  HostName %s\n' "$id-h$k" "$subnet.$((k + 1))" >>"$dir/ssh_config"
  done
  cat >>"$dir/ssh_config" <<EOF
Host *
  User root
  Port 22
  IdentityFile $dir/client_key
  IdentitiesOnly yes
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  LogLevel ERROR
  ConnectTimeout 5
EOF
  # Ready when every sshd answers over the bridge (a fresh veth takes a moment to forward).
  for ((k = 1; k <= num_hosts; k++)); do
    local addr="$subnet.$((k + 1))" tries
    for ((tries = 0; ; tries++)); do
      if ssh -F "$dir/ssh_config" -o BatchMode=yes "$addr" true 2>/dev/null; then break; fi
      if [ "$tries" -ge 50 ]; then
        echo "netns-hosts.sh: ssh to $addr did not answer; sshd log:" >&2
        cat "$dir/h$k/sshd.log" >&2 || true
        false
      fi
      sleep 0.1
    done
  done
  trap - ERR
  echo "netns-hosts.sh: $num_hosts hosts up in $subnet.0/24 (launcher $subnet.1), files in $dir"
}

case "$command" in
  up) up "$@" ;;
  down)
    [ $# -eq 1 ] || usage
    down "$1"
    ;;
  cut | restore)
    [ $# -eq 2 ] || usage
    load_state "$1"
    k=$(host_index "$2")
    veth_var="VETH_$k"
    ip link set "${!veth_var}" "$([ "$command" = cut ] && echo down || echo up)"
    ;;
  pids)
    [ $# -eq 2 ] || usage
    load_state "$1"
    k=$(host_index "$2")
    ns_var="NETNS_$k"
    for pid in $(ip netns pids "${!ns_var}"); do
      # A process may end while we look: its environ is gone, and it is no worker any more.
      environment=$({ tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null || true)
      rank=$(sed -n 's/^RANK=//p' <<<"$environment")
      if [ -n "$rank" ] && grep -q '^LMTRAIN_JOB_SECRET=' <<<"$environment"; then
        echo "$pid $rank"
      fi
    done
    ;;
  exec)
    [ $# -ge 3 ] || usage
    load_state "$1"
    k=$(host_index "$2")
    shift 2
    ns_var="NETNS_$k"
    exec ip netns exec "${!ns_var}" "$@"
    ;;
  -h | --help | help) usage ;;
  *) die "unknown command '$command' (expected up, down, cut, restore, pids or exec)" ;;
esac
