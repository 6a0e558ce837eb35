#!/usr/bin/env bash
# The NAT64 gateway (full-proxy's [nat64] section) against TAYGA 0.9.2 and against plain kernel
# forwarding, in three network namespaces on one machine; then the same gateway as a stateful NAT64
# (mode = "stateful": h6's /64 shares 192.0.2.16 by port), beside its stateless self. Run by hand as root, not in CI:
#     sudo bash benches/nat64-gateway-vs-tayga.sh
# Needs iproute2 (ip, ss), tayga, iperf3, taskset and cargo
# (apt-get install -y iproute2 tayga iperf3 util-linux). Prints a Markdown table on stdout and
# each run's details on stderr; takes about 2 minutes with the defaults. Leaves nothing behind.
#
#   h6 (IPv6 only)             xl (translator)                        h4 (IPv4 only)
#   2001:db8:6::10/64 --veth-- 2001:db8:6::1/64   198.51.100.1/24 --veth-- 198.51.100.2/24
#                              TUN "nat64": 2001:db8:46::/96, 192.0.2.0/24, 2001:db8:64::1/128
# h6 reaches h4 as 2001:db8:46::198.51.100.2 (RFC 6052 prefix); h4 reaches h6 as 192.0.2.10 (EAM).
# The prefix is a network-specific one, not 64:ff9b::/96: RFC 6052 §3.1 forbids the Well-Known
# Prefix for non-global IPv4 such as these documentation ranges, and both TAYGA and nat64-xlat
# refuse to translate them under it (tests/nat64_gateway.rs uses the same prefix for that reason).
#
# UDP: bin/udp-flood sends flat out (sendmmsg, batches of 64, pinned to the last CPU so that the
# scheduler keeps the translator off it), bin/udp-sink counts what arrives at the other end (recvmmsg, napping
# SINK_POLL_US µs when empty; 0 makes it block, which wakes it per packet from the translator's
# context and lowers every row) over SECONDS_PER_RUN after WARMUP seconds. IPv6 packets of 66 and
# 1448 bytes; their IPv4 forms are 20 bytes smaller. TCP: one iperf3 stream each way. Each test
# is one flow, so a multi-queue TUN hands all of it to one queue (one worker).
# CPU: utime+stime of the translator process (all threads) over the sink's counting window, per
# delivered packet and as % of one core. The ceiling column is the same veths with no translator:
# h4 also gets 2001:db8:4::2/64 and xl 2001:db8:4::1/64 for it, and the kernel forwards IPv6 of
# the same sizes (the "6→4" rows h6→h4, the "4→6" rows h4→h6). sixgate cells say n/a when
# full-proxy does not build or never brings its TUN device up within 5 s (or SKIP_SIXGATE=1).
# Environment: SECONDS_PER_RUN (5), EQUAL_RATE (200000, the offered rate of the equal-load rows), WARMUP (1), SINK_POLL_US (1000), SKIP_SIXGATE, RUST_LOG (warn).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "must run as root (network namespaces, TUN devices)" >&2; exit 1; }
for p in ip ss tayga iperf3 taskset cargo awk getconf timeout; do
  command -v "$p" >/dev/null || { echo "needs $p (apt-get install -y iproute2 tayga iperf3 util-linux)" >&2; exit 1; }
done
[[ -c /dev/net/tun ]] || { echo "needs /dev/net/tun (modprobe tun)" >&2; exit 1; }
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
EQUAL_RATE=${EQUAL_RATE:-200000}
WARMUP=${WARMUP:-1}
SINK_POLL_US=${SINK_POLL_US:-1000}

say() { echo "$*" >&2; }
cargo build --release -q -p sixgate-benches --bins
flood=$PWD/target/release/udp-flood
sink=$PWD/target/release/udp-sink
ours=$PWD/target/release/examples/full-proxy
if [[ ${SKIP_SIXGATE:-0} == 1 ]]; then
  ours=
elif ! cargo build --release -q --example full-proxy; then
  say "full-proxy does not build: sixgate cells will say n/a"
  ours=
fi

h6=sgb-h6-$$ xl=sgb-xl-$$ h4=sgb-h4-$$
pool6=2001:db8:46::/96 h4_as_v6=2001:db8:46::198.51.100.2
load_cpu=$(($(nproc) - 1))
work=$(mktemp -d)
namespaces=()
cleanup() {
  set +e
  trap - EXIT INT TERM
  # Everything this script starts runs inside its own namespaces: end exactly those processes.
  local left i
  for i in $(seq 30); do
    left=$(for ns in "${namespaces[@]}"; do ip netns pids "$ns" 2>/dev/null; done)
    [[ -z $left ]] && break
    ((i == 1)) && kill $left 2>/dev/null
    ((i >= 20)) && kill -KILL $left 2>/dev/null
    sleep 0.1
  done
  ip -n "$xl" link del nat64 2>/dev/null # TAYGA's --mktun device is persistent
  for ns in "${namespaces[@]}"; do ip netns del "$ns"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Other work on the machine shows up as a slow translator: say so (iowait counts as idle).
busy() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t, $5 + $6 }' /proc/stat; }
read -r t0 i0 <<<"$(busy)"; sleep 1; read -r t1 i1 <<<"$(busy)"
idle=$((100 * (i1 - i0) / (t1 - t0)))
((idle >= 90)) || say "warning: the machine is only ${idle}% idle before the runs; expect low numbers"

# --- topology -----------------------------------------------------------------------------------
for ns in "$h6" "$xl" "$h4"; do
  ip netns add "$ns"; namespaces+=("$ns")
  ip -n "$ns" link set lo up
  # No DAD on link-locals either (they would sit tentative), and no host rp_filter default leaking
  # in (IPv4 conf is copied from the host's): the routes below pass strict mode anyway, since every
  # source a translator writes into the TUN (192.0.2.10, 192.0.2.1) routes back via the TUN.
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
done
ip netns exec "$xl" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
mac_h6=02:00:00:00:06:10 mac_x6=02:00:00:00:06:01 mac_x4=02:00:00:00:04:01 mac_h4=02:00:00:00:04:02
ip link add name v6h address "$mac_h6" netns "$h6" type veth peer name v6x address "$mac_x6" netns "$xl"
ip link add name v4h address "$mac_h4" netns "$h4" type veth peer name v4x address "$mac_x4" netns "$xl"

ip -n "$h6" addr add 2001:db8:6::10/64 dev v6h nodad
ip -n "$h6" link set v6h up
ip -n "$h6" neigh replace 2001:db8:6::1 lladdr "$mac_x6" dev v6h nud permanent
ip -n "$h6" -6 route add "$pool6" via 2001:db8:6::1
ip -n "$h6" -6 route add 2001:db8:4::/64 via 2001:db8:6::1 # ceiling only

ip -n "$xl" addr add 2001:db8:6::1/64 dev v6x nodad
ip -n "$xl" addr add 198.51.100.1/24 dev v4x
ip -n "$xl" addr add 2001:db8:4::1/64 dev v4x nodad # ceiling only
ip -n "$xl" link set v6x up
ip -n "$xl" link set v4x up
ip -n "$xl" neigh replace 2001:db8:6::10 lladdr "$mac_h6" dev v6x nud permanent
ip -n "$xl" neigh replace 198.51.100.2 lladdr "$mac_h4" dev v4x nud permanent
ip -n "$xl" neigh replace 2001:db8:4::2 lladdr "$mac_h4" dev v4x nud permanent

ip -n "$h4" addr add 198.51.100.2/24 dev v4h
ip -n "$h4" addr add 2001:db8:4::2/64 dev v4h nodad # ceiling only, removed after it
ip -n "$h4" link set v4h up
ip -n "$h4" neigh replace 198.51.100.1 lladdr "$mac_x4" dev v4h nud permanent
ip -n "$h4" neigh replace 2001:db8:4::1 lladdr "$mac_x4" dev v4h nud permanent
ip -n "$h4" route add 192.0.2.0/24 via 198.51.100.1
ip -n "$h4" -6 route add 2001:db8:6::/64 via 2001:db8:4::1

# --- measurements -------------------------------------------------------------------------------
hz=$(getconf CLK_TCK)
kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; } # fields 14+15
out_segs() { ip netns exec "$1" awk '$1 == "Tcp:" { if (!c) { for (i = 1; i <= NF; i++) if ($i == "OutSegs") c = i } else print $c }' /proc/net/snmp; }
per_packet() { # cpu-seconds packets wall-seconds -> "µs/packet (% core)"
  awk -v c="$1" -v n="$2" -v s="$3" 'BEGIN { printf "%.2f (%.0f %%)", c / n * 1e6, c / s * 100 }'
}
declare -A val cpu

# One UDP run: val[target,key] = delivered packets/s; with a translator pid, cpu[target,key].
udp() { # target key src-ns dst-ns dest bind payload [pid]
  local target=$1 key=$2 src=$3 dst=$4 dest=$5 bind=$6 payload=$7 pid=${8:-}
  ip netns exec "$dst" "$sink" "$bind" "$SECONDS_PER_RUN" --warmup "$WARMUP" --poll-us "$SINK_POLL_US" \
    ${pid:+--pid "$pid"} >"$work/sink" &
  local sp=$! sent got pps
  sleep 0.3
  # In the background and waited for, here and below, so that a signal's trap runs at once.
  ip netns exec "$src" taskset -c "$load_cpu" "$flood" "$dest" "$payload" \
    "$(awk -v a="$SECONDS_PER_RUN" -v b="$WARMUP" 'BEGIN { print a + b + 1 }')" >"$work/flood" &
  wait $! || true
  wait "$sp" || true
  sent=$(<"$work/flood") got=$(<"$work/sink")
  pps=$(kv pps "$got")
  val[$target,$key]=$pps
  say "$target $key: offered $(kv pps "$sent") pkt/s, delivered $pps pkt/s, sink RcvbufErrors $(kv rcvbuf_errors "$got")"
  if [[ -n $pid ]] && (($(kv packets "$got") > 0)); then
    cpu[$target,$key]=$(per_packet "$(awk -v t="$(kv cpu_ticks "$got")" -v hz="$(kv clk_tck "$got")" 'BEGIN { print t / hz }')" \
      "$(kv packets "$got")" "$(kv seconds "$got")")
  fi
}

# One iperf3 stream, server at the destination: val = receiver Gbit/s; cpu per data segment sent
# (the sender namespace's TCP OutSegs; the translator also carries the ACKs) and % core.
# IPERF_REVERSE=1: the server sends (iperf3 -R), so data flows dst → src over src's connection.
tcp() { # target key src-ns dst-ns dest [pid]
  local target=$1 key=$2 src=$3 dst=$4 dest=$5 pid=${6:-}
  local reverse=${IPERF_REVERSE:+-R} sender=$3
  [[ -n $reverse ]] && sender=$4
  ip netns exec "$dst" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
  local sp=$! s0 t0 w0 out s1 t1 w1 gbps
  for _ in $(seq 50); do [[ -n $(ip netns exec "$dst" ss -Hltn 'sport = :5201') ]] && break; sleep 0.1; done
  s0=$(out_segs "$sender"); t0=${pid:+$(ticks "$pid")}; w0=$(date +%s.%N)
  timeout $((SECONDS_PER_RUN + 15)) ip netns exec "$src" iperf3 -c "$dest" -p 5201 -t "$SECONDS_PER_RUN" -f g \
    --connect-timeout 3000 $reverse >"$work/iperf3" 2>&1 &
  wait $! || true
  out=$(<"$work/iperf3")
  s1=$(out_segs "$sender"); t1=${pid:+$(ticks "$pid")}; w1=$(date +%s.%N)
  kill "$sp" 2>/dev/null || true; wait "$sp" 2>/dev/null || true
  gbps=$(awk '/receiver/ { print $(NF-2) }' <<<"$out")
  val[$target,$key]=${gbps:-0}
  say "$target $key: ${gbps:-0} Gbit/s, $((s1 - s0)) segments sent"
  [[ -n $gbps ]] || say "$out"
  if [[ -n $pid ]] && ((s1 > s0)); then
    cpu[$target,$key]=$(per_packet "$(awk -v t=$((t1 - t0)) -v hz="$hz" 'BEGIN { print t / hz }')" $((s1 - s0)) \
      "$(awk -v a="$w0" -v b="$w1" 'BEGIN { print b - a }')")
  fi
}

# The six tests through a translator running in xl as process $2.
through_translator() { # target pid
  udp "$1" u66_64 "$h6" "$h4" "[$h4_as_v6]:9000" 0.0.0.0:9000 18 "$2"
  udp "$1" u66_46 "$h4" "$h6" 192.0.2.10:9000 "[::]:9000" 18 "$2"
  udp "$1" u1448_64 "$h6" "$h4" "[$h4_as_v6]:9000" 0.0.0.0:9000 1400 "$2"
  udp "$1" u1448_46 "$h4" "$h6" 192.0.2.10:9000 "[::]:9000" 1400 "$2"
  tcp "$1" tcp_64 "$h6" "$h4" "$h4_as_v6" "$2"
  tcp "$1" tcp_46 "$h4" "$h6" 192.0.2.10 "$2"
  # Equal load: the same offered rate through both translators, below either's maximum, so CPU
  # per packet compares like with like (batching pays less when packets come one at a time).
  UDP_FLOOD_RATE=$EQUAL_RATE udp "$1" eq_64 "$h6" "$h4" "[$h4_as_v6]:9000" 0.0.0.0:9000 18 "$2"
  UDP_FLOOD_RATE=$EQUAL_RATE udp "$1" eq_46 "$h4" "$h6" 192.0.2.10:9000 "[::]:9000" 18 "$2"
}

xl_routes() {
  ip -n "$xl" link set nat64 up
  ip -n "$xl" -6 route add "$pool6" dev nat64
  ip -n "$xl" route add 192.0.2.0/24 dev nat64 # the EAM's 192.0.2.10 and the translator's own_v4
  ip -n "$xl" -6 route add 2001:db8:64::1/128 dev nat64
}

stop_translator() { # pid
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  # Not always this shell's child (see start_ours): wait for it to be gone.
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  ip -n "$xl" link del nat64 2>/dev/null || true
}

# Ceiling: IPv6 forwarded by the kernel between the same veths.
say "kernel forwarding (IPv6 h6 <-> h4, no translator)"
udp kernel u66_64 "$h6" "$h4" "[2001:db8:4::2]:9000" "[::]:9000" 18
udp kernel u66_46 "$h4" "$h6" "[2001:db8:6::10]:9000" "[::]:9000" 18
udp kernel u1448_64 "$h6" "$h4" "[2001:db8:4::2]:9000" "[::]:9000" 1400
udp kernel u1448_46 "$h4" "$h6" "[2001:db8:6::10]:9000" "[::]:9000" 1400
tcp kernel tcp_64 "$h6" "$h4" 2001:db8:4::2
tcp kernel tcp_46 "$h4" "$h6" 2001:db8:6::10
ip -n "$h4" addr del 2001:db8:4::2/64 dev v4h

# TAYGA: a persistent TUN from --mktun, then the daemon in the foreground.
say "TAYGA $(dpkg-query -W -f '${Version}' tayga 2>/dev/null || true)"
mkdir "$work/tayga"
cat >"$work/tayga.conf" <<CONF
tun-device nat64
ipv4-addr 192.0.2.1
ipv6-addr 2001:db8:64::1
prefix $pool6
map 192.0.2.10 2001:db8:6::10
data-dir $work/tayga
CONF
ip netns exec "$xl" tayga -c "$work/tayga.conf" --mktun >/dev/null
xl_routes
ip netns exec "$xl" tayga -c "$work/tayga.conf" --nodetach >"$work/tayga.log" 2>&1 &
tayga_pid=$!
sleep 0.5
kill -0 "$tayga_pid" || { cat "$work/tayga.log" >&2; exit 1; }
through_translator tayga "$tayga_pid"
stop_translator "$tayga_pid"

# sixgate: full-proxy creates the device, sets its MTU and brings it up with its queues attached.
# start_ours NAME KEYS: runs it with the shared [nat64] keys plus KEYS; prints its pid, or nothing.
start_ours() {
  cat >"$work/$1.toml" <<CONF
[nat64]
tun = "nat64"
pool6 = "$pool6"
own_v4 = "192.0.2.1"
own_v6 = "2001:db8:64::1"
mtu = 1500
queues = 0
$2
CONF
  RUST_LOG=${RUST_LOG:-warn} ip netns exec "$xl" "$ours" --config "$work/$1.toml" >"$work/$1.log" 2>&1 &
  local pid=$!
  up() { [[ $(ip -n "$xl" -o link show dev nat64 2>/dev/null) == *LOWER_UP* ]]; }
  for _ in $(seq 50); do up && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if up && kill -0 "$pid" 2>/dev/null; then
    say "sixgate $1 (full-proxy at $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes'))"
    xl_routes
    echo "$pid"
  else
    say "full-proxy brought up no nat64 device within 5 s: sixgate $1 cells say n/a. Its last words:"
    tail -n 5 "$work/$1.log" >&2
    stop_translator "$pid"
  fi
}

if [[ -n $ours ]]; then
  ours_pid=$(start_ours stateless 'eam = [ { v4 = "192.0.2.10/32", v6 = "2001:db8:6::10/128" } ]')
  if [[ -n $ours_pid ]]; then
    through_translator sixgate "$ours_pid"
    stop_translator "$ours_pid"
  fi
  # Stateful: h6's /64 is the one customer, and owns all 64512 ports of 192.0.2.16. The 4→6 UDP
  # rows go to the mapping h6's port 9000 gets first: the block's first port of its parity, 1024.
  # (start_ours runs in a subshell: the gateway is not this shell's child, stop_translator kills it.)
  ours_pid=$(start_ours stateful 'mode = "stateful"
pool4 = ["192.0.2.16/32"]
customers = ["2001:db8:6::/64"]
ports_per_block = 64512
max_sessions_per_block = 100000')
  if [[ -n $ours_pid ]]; then
    # First, so the port search starts at the block's first port.
    UDP_FLOOD_FROM="[::]:9000" UDP_FLOOD_RATE=10 ip netns exec "$h6" "$flood" "[$h4_as_v6]:9001" 18 0.5 >/dev/null
    udp stateful u66_64 "$h6" "$h4" "[$h4_as_v6]:9000" 0.0.0.0:9000 18 "$ours_pid"
    udp stateful u1448_64 "$h6" "$h4" "[$h4_as_v6]:9000" 0.0.0.0:9000 1400 "$ours_pid"
    udp stateful u66_46 "$h4" "$h6" 192.0.2.16:1024 "[::]:9000" 18 "$ours_pid"
    udp stateful u1448_46 "$h4" "$h6" 192.0.2.16:1024 "[::]:9000" 1400 "$ours_pid"
    tcp stateful tcp_64 "$h6" "$h4" "$h4_as_v6" "$ours_pid"
    # A stateful NAT64 takes no connection from IPv4: the 4→6 stream runs on h6's connection.
    IPERF_REVERSE=1 tcp stateful tcp_46 "$h6" "$h4" "$h4_as_v6" "$ours_pid"
    UDP_FLOOD_RATE=$EQUAL_RATE udp stateful eq_64 "$h6" "$h4" "[$h4_as_v6]:9000" 0.0.0.0:9000 18 "$ours_pid"
    UDP_FLOOD_RATE=$EQUAL_RATE udp stateful eq_46 "$h4" "$h6" 192.0.2.16:1024 "[::]:9000" 18 "$ours_pid"
    stop_translator "$ours_pid"
  fi
fi

# --- table --------------------------------------------------------------------------------------
cell() { # target key
  local v=${val[$1,$2]:-}
  if [[ -z $v ]]; then echo "n/a"
  elif [[ $2 == tcp* ]]; then echo "$v Gbit/s"
  else awk -v v="$v" 'BEGIN { printf "%.0fk pkt/s", v / 1000 }'
  fi
}
ratio() { # key [numerator denominator]
  local a=${val[${2:-sixgate},$1]:-} b=${val[${3:-tayga},$1]:-}
  if [[ -n $a && -n $b ]]; then awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "n/a" }'; else echo n/a; fi
}
printf '\n| test | kernel forwarding | TAYGA | sixgate | sixgate/TAYGA | TAYGA CPU µs/pkt (core) | sixgate CPU µs/pkt (core) | sixgate stateful | stateful/stateless | stateful CPU µs/pkt (core) |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
for row in "u66_64|UDP 66 B 6→4" "u66_46|UDP 66 B 4→6" "u1448_64|UDP 1448 B 6→4" "u1448_46|UDP 1448 B 4→6" \
  "tcp_64|TCP 6→4" "tcp_46|TCP 4→6" "eq_64|UDP 66 B 6→4 at ${EQUAL_RATE} pkt/s" "eq_46|UDP 66 B 4→6 at ${EQUAL_RATE} pkt/s"; do
  IFS='|' read -r key name <<<"$row"
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$(cell kernel "$key")" "$(cell tayga "$key")" \
    "$(cell sixgate "$key")" "$(ratio "$key")" "${cpu[tayga,$key]:-n/a}" "${cpu[sixgate,$key]:-n/a}" \
    "$(cell stateful "$key")" "$(ratio "$key" stateful sixgate)" "${cpu[stateful,$key]:-n/a}"
done
printf '\nUDP: packets/s delivered to the sink, sender flat out; sizes are the IPv6 packets. %s s runs after %s s warm-up.\n' "$SECONDS_PER_RUN" "$WARMUP"
printf 'TCP: one iperf3 stream. CPU: the translator'"'"'s utime+stime per delivered packet (TCP: per data segment sent,\n'
printf 'ACKs included) and as %% of one core. The kernel column forwards IPv6 both ways, untranslated.\n'
printf 'Stateful: h6 shares 192.0.2.16 by port; its TCP 4→6 row is iperf3 -R on a connection h6 opened.\n'
