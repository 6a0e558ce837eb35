#!/usr/bin/env bash
# full-proxy against HAProxy 2.6 (mode tcp, send-proxy-v2): same nginx backend, same machine,
# same wrk load, one run. Run by hand, not in CI:   bash benches/full-proxy-vs-haproxy.sh
# Needs haproxy, nginx, wrk (apt-get install -y haproxy nginx wrk) and prints a Markdown table
# of requests/s, p50/p99 latency and peak RSS, with full-proxy's ratio to HAProxy.
set -euo pipefail
cd "$(dirname "$0")/.."
for p in haproxy nginx wrk curl; do command -v "$p" >/dev/null || { echo "needs $p" >&2; exit 1; }; done
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
cargo build --release -q --example full-proxy
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing on $1:$2" >&2; exit 1; }

backend=$(free_port); ours=$(free_port); theirs=$(free_port)
head -c 1024 /dev/zero > "$work/1k"; head -c 1048576 /dev/zero > "$work/1m"
cat > "$work/nginx.conf" <<CONF
daemon off; master_process off; pid $work/nginx.pid; error_log $work/nginx.log;
events { worker_connections 4096; }
http { access_log off; sendfile on; keepalive_requests 100000;
  client_body_temp_path $work/b; proxy_temp_path $work/p; fastcgi_temp_path $work/f; uwsgi_temp_path $work/u; scgi_temp_path $work/s;
  server { listen [::1]:$backend proxy_protocol; root $work; } }
CONF
nginx -p "$work" -c "$work/nginx.conf" & pids+=($!)
cat > "$work/haproxy.cfg" <<CONF
global
  maxconn 4000
defaults
  mode tcp
  timeout connect 3s
  timeout client 5m
  timeout server 5m
frontend bench
  bind 127.0.0.1:$theirs
  default_backend nginx
backend nginx
  server n [::1]:$backend send-proxy-v2
CONF
haproxy -db -f "$work/haproxy.cfg" & pids+=($!); haproxy_pid=$!
cat > "$work/sixgate.toml" <<CONF
[[listen]]
addresses = ["127.0.0.1:$ours"]
mode = "http"
[[route]]
hosts = ["*"]
proxy_protocol = "v2"
backends = [{ address = "[::1]:$backend" }]
[limits]
relay = "${RELAY:-splice}"
CONF
RUST_LOG=warn ./target/release/examples/full-proxy --config "$work/sixgate.toml" & pids+=($!); ours_pid=$!
wait_port ::1 "$backend"; wait_port 127.0.0.1 "$theirs"; wait_port 127.0.0.1 "$ours"

# One wrk run: requests/s, p50 and p99 in ms.
measure() { # port path connections extra-header
  local out
  out=$(wrk -t2 -c"$3" -d"${SECONDS_PER_RUN}s" --latency ${4:+-H "$4"} "http://127.0.0.1:$1$2")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}
to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'; }
rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

printf '| load | HAProxy req/s | full-proxy req/s | ratio | HAProxy p50/p99 ms | full-proxy p50/p99 ms |\n|---|---|---|---|---|---|\n'
for load in "new connection per request, 1 KiB|/1k|32|Connection: close" "keep-alive, 1 KiB|/1k|32|" "keep-alive, 1 MiB|/1m|8|"; do
  IFS='|' read -r name path conns header <<<"$load"
  read -r h_rps h_p50 h_p99 <<<"$(measure "$theirs" "$path" "$conns" "$header")"
  read -r o_rps o_p50 o_p99 <<<"$(measure "$ours" "$path" "$conns" "$header")"
  ratio=$(awk -v a="$o_rps" -v b="$h_rps" 'BEGIN { printf "%.2f", a/b }')
  printf '| %s | %s | %s | %s× | %s / %s | %s / %s |\n' "$name" "$h_rps" "$o_rps" "$ratio" "$h_p50" "$h_p99" "$o_p50" "$o_p99"
done
h_rss=$(rss_kb "$haproxy_pid"); o_rss=$(rss_kb "$ours_pid")
printf '\nPeak RSS: HAProxy %s KiB, full-proxy %s KiB (%s×)\n' "$h_rss" "$o_rss" "$(awk -v a="$o_rss" -v b="$h_rss" 'BEGIN { printf "%.2f", a/b }')"
