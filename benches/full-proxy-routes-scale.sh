#!/usr/bin/env bash
# full-proxy at hosting scale: one route per customer (one name, one `*.domain`, 2 backends; made by
# benches/gen-routes.sh) for 1,000 to 100,000 routes. For each size: `--check` time and peak memory
# (/usr/bin/time), then the proxy started on the file (time until it listens, peak memory), reloaded
# with the same file and with every backend moved to another address (time until the log says
# reloaded), and the peak memory (VmHWM: the highest so far) once started, after the first reload
# and after the second. While the second reload runs, a
# client opens connections one after another and sends a request the TLS listener refuses: the
# longest wait for the refusal shows how long accepting paused. Run by hand, not in CI:
#     bash benches/full-proxy-routes-scale.sh
# Needs cargo, awk and GNU time (apt-get install -y time). Prints the load average, then a
# Markdown table.
# Environment: ROUTES ("1000 5000 20000 100000"), SERVERS (empty: 2 per route, every route its own
# pool; 1000: 500 server pairs shared by the customers).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x /usr/bin/time ]] || { echo "needs GNU time (apt-get install -y time)" >&2; exit 1; }
ROUTES=${ROUTES:-1000 5000 20000 100000}
SERVERS=${SERVERS:-}
cargo build --release -q --example full-proxy
proxy=$PWD/target/release/examples/full-proxy
work=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
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
  started_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  start=$(now); kill -HUP "$pid"
  same=$(wait_log "$start" 1 "configuration reloaded")
  same_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  # Every backend moves to another address: each route takes its old pool over and updates it.
  sed -i 's/::10" },$/::11" },/' "$work/routes.toml"
  probe "$port" "$(awk -v s="$same" 'BEGIN { print 2 * s + 1 }')" > "$work/probe" & prober=$!
  sleep 0.3
  start=$(now); kill -HUP "$pid"
  changed=$(wait_log "$start" 2 "configuration reloaded")
  wait "$prober"
  running_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  printf '| %s | %s s | %s | %s s | %s | %s s | %s | %s s | %s ms | %s |\n' "$(sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$n")" "$check_s" "$(mb "$check_kb")" \
    "$load" "$(mb "$started_kb")" "$same" "$(mb "$same_kb")" "$changed" "$(cat "$work/probe")" "$(mb "$running_kb")"
done
