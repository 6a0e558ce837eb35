#!/usr/bin/env bash
# full-proxy at hosting scale: one route per customer (one name, one `*.domain`, 2 backends; made by
# benches/gen-routes.sh) for 1,000 to 100,000 routes. For each size: `--check` time and peak memory
# (/usr/bin/time), then the proxy started on the file (time until it listens, peak memory), reloaded
# with the same file and with every backend moved to another address (time until the log says
# reloaded), and the peak memory (VmHWM: the highest so far) once started, after the first reload
# and after the second. While the second reload runs, a
# client opens connections one after another and sends a request the TLS listener refuses: the
# longest wait for the refusal shows how long accepting paused.
# Then the peers on the same customers, as their operators would write them (gen-routes.sh's
# FORMAT): nginx (stream, `map … hostnames`, an upstream per server pair) and HAProxy (req.ssl_sni
# in a map file, a backend per server pair), each checked (`-t`, `-c`), started, and reloaded with
# the same file: nginx by SIGHUP (time until its new worker runs; memory: the master's VmHWM plus
# the worker's own pages), HAProxy by a new process with -sf (time until the old one has gone;
# memory: the new one's peak plus what the old one held, as both are alive). PEERS=0 leaves them
# out; a peer not installed is said below the table. Run by hand, not in CI:
#     bash benches/full-proxy-routes-scale.sh
# Needs cargo, awk and GNU time (apt-get install -y time); for the peers nginx with its stream
# module and haproxy (apt-get install -y nginx libnginx-mod-stream haproxy). Prints the load
# average, then a Markdown table.
# Environment: ROUTES ("1000 5000 20000 100000"), SERVERS (empty: 2 per route, every route its own
# pool; 1000: 500 server pairs shared by the customers), PEERS (1).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x /usr/bin/time ]] || { echo "needs GNU time (apt-get install -y time)" >&2; exit 1; }
ROUTES=${ROUTES:-1000 5000 20000 100000}
SERVERS=${SERVERS:-}
PEERS=${PEERS:-1}
cargo build --release -q --example full-proxy
proxy=$PWD/target/release/examples/full-proxy
work=$(mktemp -d)
pid=
peer=
old=
cleanup() { for p in $pid $peer $old; do kill "$p" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
# Seconds from $1 until the log holds $2 lines matching $3 (gives up after 60 s).
wait_log() {
  local start=$1 want=$2 pattern=$3
  for _ in $(seq 6000); do
    (($(grep -c -- "$pattern" "$work/log" || true) >= want)) && { awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; return; }
    kill -0 "$pid" 2>/dev/null || { echo "full-proxy exited: $(tail -3 "$work/log")" >&2; exit 1; }
    sleep 0.01
  done
  echo "no $pattern within 60 s" >&2; exit 1
}
# Connects to ::1 port $1 one connection after another for $2 seconds; prints the longest wait in ms.
probe() {
  python3 - "$1" "$2" <<'PY'
import socket, sys, time
port, end, worst = int(sys.argv[1]), time.monotonic() + float(sys.argv[2]), 0.0
while time.monotonic() < end:
    t = time.monotonic()
    with socket.create_connection(("::1", port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        while s.recv(4096):
            pass
    worst = max(worst, time.monotonic() - t)
print(f"{worst * 1000:.1f}")
PY
}
mb() { awk -v k="$1" 'BEGIN { printf "%.0f MB", k / 1024 }'; }
# Field $1 (kB) of process $2's status. Here and below, a value /proc does not give stops the
# run, saying what, rather than add an empty value.
kb() {
  local k
  k=$(awk -v f="$1" '$1 == f ":" { print $2 }' "/proc/$2/status" 2>/dev/null)
  [[ $k =~ ^[0-9]+$ ]] || { echo "no $1 for process $2: has it exited?" >&2; exit 1; }
  echo "$k"
}
# The pages process $1 holds alone: nginx's worker shares the rest with its master.
own_kb() {
  local k
  k=$(awk '/^Private_(Clean|Dirty):/ { k += $2 } END { print k }' "/proc/$1/smaps_rollup" 2>/dev/null)
  [[ $k =~ ^[0-9]+$ ]] || { echo "no private pages for process $1: has it exited?" >&2; exit 1; }
  echo "$k"
}
# Seconds from $1 until the command $3... succeeds, while process $2 lives (gives up after 300 s).
until_true() {
  local start=$1 alive=$2 end; shift 2
  end=$(awk -v a="$start" 'BEGIN { printf "%.3f", a + 300 }')
  until "$@"; do
    kill -0 "$alive" 2>/dev/null || { echo "process $alive exited while waiting for: $*" >&2; exit 1; }
    awk -v e="$end" -v t="$(now)" 'BEGIN { exit !(t > e) }' && { echo "not within 300 s: $*" >&2; exit 1; }
    sleep 0.01
  done
  awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'
}
listening() { (exec 3<>"/dev/tcp/::1/$1") 2>/dev/null; }
# nginx's newest worker (pgrep lists the old one first while it drains).
worker() { pgrep -n -P "$peer"; }
worker_other_than() { local w; w=$(worker) && [[ $w != "$1" ]]; }
gone() { ! kill -0 "$1" 2>/dev/null; }
row() { local out='|' cell; for cell; do out+=" $cell |"; done; printf '%s\n' "$out"; }
count() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }
# Debian builds nginx's stream module as a module: the line that loads it from nginx's own
# modules directory, empty where it is built in; fails where it is missing.
stream_module() {
  nginx -V 2>&1 | grep -q -- '--with-stream=dynamic' || return 0
  local so
  so="$(nginx -V 2>&1 | grep -o -- '--modules-path=[^ ]*' | cut -d= -f2)/ngx_stream_module.so"
  [[ -f $so ]] && echo "load_module $so;"
}

# Memory is read 1 s after a peer is up: a process may still be setting itself up when it first
# answers. "Started" is when nginx's worker runs, when HAProxy accepts a connection.
nginx_row() {
  local n=$1 module=$2 port check_s check_kb started started_kb worker same same_kb
  port=$(free_port)
  { printf '%s\ndaemon off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/nginx.log;\n' "$module" "$work" "$work"
    printf 'events { worker_connections 1024; }\n'
    FORMAT=nginx bash benches/gen-routes.sh "$n" "${SERVERS:-$((2 * n))}" "$port"; } > "$work/nginx.conf"
  /usr/bin/time -f '%e %M' -o "$work/time" nginx -q -t -e "$work/nginx.log" -p "$work" -c "$work/nginx.conf" ||
    { echo "nginx -t failed: $(tail -3 "$work/nginx.log")" >&2; exit 1; }
  read -r check_s check_kb < "$work/time"
  start=$(now)
  nginx -e "$work/nginx.log" -p "$work" -c "$work/nginx.conf" & peer=$!
  started=$(until_true "$start" "$peer" worker_other_than 0)
  worker=$(worker); sleep 1
  started_kb=$(($(kb VmHWM "$peer") + $(own_kb "$worker")))
  start=$(now); kill -HUP "$peer"
  same=$(until_true "$start" "$peer" worker_other_than "$worker")
  sleep 1
  same_kb=$(($(kb VmHWM "$peer") + $(own_kb "$(worker)")))
  kill "$peer"; wait "$peer" 2>/dev/null || true; peer=
  row "$(count "$n"), nginx $(nginx -v 2>&1 | sed 's|.*/||')" "$check_s s" "$(mb "$check_kb")" "$started s" \
    "$(mb "$started_kb")" "$same s" "$(mb "$same_kb")" "" "" ""
}

# A reload is a new process, started beside the old one: its peak plus what the old one held.
haproxy_row() {
  local n=$1 port check_s check_kb started started_kb same same_kb
  port=$(free_port)
  FORMAT=names bash benches/gen-routes.sh "$n" "${SERVERS:-$((2 * n))}" > "$work/names.map"
  FORMAT=suffixes bash benches/gen-routes.sh "$n" "${SERVERS:-$((2 * n))}" > "$work/suffixes.map"
  FORMAT=haproxy MAPS="$work" bash benches/gen-routes.sh "$n" "${SERVERS:-$((2 * n))}" "$port" > "$work/haproxy.cfg"
  /usr/bin/time -f '%e %M' -o "$work/time" haproxy -q -c -f "$work/haproxy.cfg"
  read -r check_s check_kb < "$work/time"
  start=$(now)
  haproxy -q -db -f "$work/haproxy.cfg" & peer=$!
  started=$(until_true "$start" "$peer" listening "$port")
  sleep 1
  started_kb=$(kb VmHWM "$peer")
  old=$peer; same_kb=$(kb VmRSS "$old"); start=$(now)
  haproxy -q -db -f "$work/haproxy.cfg" -sf "$old" & peer=$!
  same=$(until_true "$start" "$peer" gone "$old")
  wait "$old" 2>/dev/null || true; old=
  sleep 1
  same_kb=$((same_kb + $(kb VmHWM "$peer")))
  kill "$peer"; wait "$peer" 2>/dev/null || true; peer=
  row "$(count "$n"), HAProxy $(haproxy -v | awk 'NR == 1 { sub(/-.*/, "", $3); print $3 }')" "$check_s s" \
    "$(mb "$check_kb")" "$started s" "$(mb "$started_kb")" "$same s" "$(mb "$same_kb")" "" "" ""
}

# Which peers can run, or why not.
nginx=yes haproxy=yes stream=
if ! command -v nginx >/dev/null; then nginx="not installed"
elif ! stream=$(stream_module); then nginx="its stream module is not installed (libnginx-mod-stream)"; fi
command -v haproxy >/dev/null || haproxy="not installed"
# Timings on a loaded machine are worse: say how loaded it was.
printf 'Load average at the start: %s\n\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '| routes (each: one name, one `*.domain`, 2 backends) | `--check` | peak memory | start | peak memory, started | reload, same file | peak memory so far | reload, every backend moved | longest wait for a connection then | peak memory so far |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
for n in $ROUTES; do
  port=$(free_port)
  bash benches/gen-routes.sh "$n" ${SERVERS:-$((2 * n))} "$port" > "$work/routes.toml"
  /usr/bin/time -f '%e %M' -o "$work/time" "$proxy" --config "$work/routes.toml" --check > /dev/null
  read -r check_s check_kb < "$work/time"
  start=$(now)
  RUST_LOG=info "$proxy" --config "$work/routes.toml" > "$work/log" 2>&1 & pid=$!
  load=$(wait_log "$start" 1 "listening")
  started_kb=$(kb VmHWM "$pid")
  start=$(now); kill -HUP "$pid"
  same=$(wait_log "$start" 1 "configuration reloaded")
  same_kb=$(kb VmHWM "$pid")
  # Every backend moves to another address: each route takes its old pool over and updates it.
  sed -i 's/::10" },$/::11" },/' "$work/routes.toml"
  probe "$port" "$(awk -v s="$same" 'BEGIN { print 2 * s + 1 }')" > "$work/probe" & prober=$!
  sleep 0.3
  start=$(now); kill -HUP "$pid"
  changed=$(wait_log "$start" 2 "configuration reloaded")
  wait "$prober"
  running_kb=$(kb VmHWM "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  row "$(count "$n")" "$check_s s" "$(mb "$check_kb")" "$load s" "$(mb "$started_kb")" "$same s" \
    "$(mb "$same_kb")" "$changed s" "$(cat "$work/probe") ms" "$(mb "$running_kb")"
  [[ $PEERS == 1 ]] || continue
  if [[ $nginx == yes ]]; then nginx_row "$n" "$stream"; fi
  if [[ $haproxy == yes ]]; then haproxy_row "$n"; fi
done
[[ $PEERS != 1 || $nginx == yes ]] || printf '\nSKIPPED nginx: %s\n' "$nginx"
[[ $PEERS != 1 || $haproxy == yes ]] || printf '\nSKIPPED HAProxy: %s\n' "$haproxy"
