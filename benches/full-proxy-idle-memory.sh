#!/usr/bin/env bash
# Memory per idle TLS connection: full-proxy, HAProxy 2.6 (mode tcp, routing on req.ssl_sni) and
# nginx stream (ssl_preread), one after the other in the same run, each with 2 worker threads or
# processes, in front of the same nginx TLS backend. For each: N clients (idle-tls-clients, from
# this package) complete a TLS handshake and one HTTP request through the proxy, then stay idle.
# The proxy's VmRSS (summed over its processes: nginx's master and workers) is read before, while
# the N are held, and 2 s after they all closed; then N are opened again, to see whether memory
# kept after the first close is reused. Kernel memory (socket buffers) is in no VmRSS: not counted,
# for any of the three. Before the first reading, 100 connections come and go (one-time set-up).
# Run by hand, not in CI:   bash benches/full-proxy-idle-memory.sh [N]     (N: 8000 by default)
# Needs haproxy, nginx with the stream module, openssl (apt-get install -y haproxy nginx
# libnginx-mod-stream openssl), and 2 N + 1,000 open files a process (ulimit -n, raised here).
# Prints a Markdown table. Goal (issue 11): at most 2.5 KB per connection with 8,000 held.
# RELAYS ("splice" by default; e.g. "splice uring") runs full-proxy once with each relay.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-8000}
RELAYS=${RELAYS:-splice}
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [connections]" >&2; exit 2; }
for p in haproxy nginx openssl; do command -v "$p" >/dev/null || { echo "needs $p" >&2; exit 1; }; done
# A proxy holds two sockets per connection (the backend and the clients one each).
files=$((2 * N + 1000))
(($(ulimit -n) >= files)) || ulimit -n "$files" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(($(ulimit -n) >= files)) || { echo "ulimit -n is $(ulimit -n): $N connections need $files" >&2; exit 1; }
cargo build --release -q --example full-proxy
cargo build --release -q -p sixgate-benches --bin idle-tls-clients
proxy=$PWD/target/release/examples/full-proxy
clients=$PWD/target/release/idle-tls-clients
name=bench.test
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
# A port under the ephemeral range (the clients' 2 N connections take theirs from it) nobody listens on.
free_port() {
  local p
  while p=$((20000 + RANDOM % 12000)); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || (exec 3<>"/dev/tcp/::1/$p") 2>/dev/null; do :; done
  echo "$p"
}
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing on $1:$2" >&2; exit 1; }
# VmRSS in kB of process $1 and its children (nginx's workers).
rss_kb() {
  local total=0 p kb
  for p in "$1" $(grep -l "^PPid:[[:space:]]*$1\$" /proc/[0-9]*/status 2>/dev/null | cut -d/ -f3); do
    kb=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${kb:-0}))
  done
  echo "$total"
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=$name" \
  -addext "subjectAltName=DNS:$name" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
backend=$(free_port)
cat > "$work/backend.conf" <<CONF
daemon off; master_process off; pid $work/backend.pid; error_log $work/backend.log;
events { worker_connections $((N + 1000)); }
http { access_log off; keepalive_timeout 10m; keepalive_requests 1000;
  client_body_temp_path $work/b; proxy_temp_path $work/p; fastcgi_temp_path $work/f; uwsgi_temp_path $work/u; scgi_temp_path $work/s;
  server { listen [::1]:$backend ssl; ssl_protocols TLSv1.2 TLSv1.3; ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;
    location / { return 200 "idle\n"; } } }
CONF
nginx -e "$work/backend.log" -p "$work" -c "$work/backend.conf" & pids+=($!)
wait_port ::1 "$backend"

# The three proxies' configurations; each listens on 127.0.0.1:PORT and is started by start_*.
start_full_proxy() { # port relay
  cat > "$work/sixgate.toml" <<CONF
[[listen]]
addresses = ["127.0.0.1:$1"]
mode = "tls"
[[route]]
hosts = ["$name"]
backends = [{ address = "[::1]:$backend" }]
[limits]
max_connections = $((N + 1000))
threads = 2
idle_timeout = "10m"
drain_timeout = "1s"
relay = "$2"
CONF
  RUST_LOG=warn "$proxy" --config "$work/sixgate.toml" 2>> "$work/full-proxy.log" &
}
start_haproxy() {
  cat > "$work/haproxy.cfg" <<CONF
global
  maxconn $((N + 1000))
  nbthread 2
defaults
  mode tcp
  timeout connect 3s
  timeout client 10m
  timeout server 10m
frontend tls
  bind 127.0.0.1:$1
  tcp-request inspect-delay 5s
  tcp-request content accept if { req.ssl_hello_type 1 }
  use_backend nginx if { req.ssl_sni -i $name }
backend nginx
  server n [::1]:$backend
CONF
  haproxy -db -f "$work/haproxy.cfg" 2>> "$work/haproxy.log" &
}
start_nginx_stream() {
  local load=
  # Debian builds the stream module as a module; load it from nginx's own modules directory.
  if nginx -V 2>&1 | grep -q -- '--with-stream=dynamic'; then
    load="load_module $(nginx -V 2>&1 | grep -o -- '--modules-path=[^ ]*' | cut -d= -f2)/ngx_stream_module.so;"
  fi
  cat > "$work/stream.conf" <<CONF
$load
daemon off; worker_processes 2; worker_rlimit_nofile $((2 * N + 1000)); pid $work/stream.pid; error_log $work/stream.log;
events { worker_connections $((2 * N + 1000)); }
stream {
  map \$ssl_preread_server_name \$upstream { $name backend; default refuse; }
  upstream backend { server [::1]:$backend; }
  upstream refuse { server 127.0.0.1:9; }
  server { listen 127.0.0.1:$1; ssl_preread on; proxy_pass \$upstream; proxy_timeout 10m; }
}
CONF
  nginx -e "$work/stream.log" -p "$work" -c "$work/stream.conf" &
}

# Opens N connections through port $1 and holds them; sets $held and $holder (the client's pid).
hold() {
  rm -f "$work/ctl" "$work/out"; mkfifo "$work/ctl"
  "$clients" "127.0.0.1:$1" "$name" "$N" --request < "$work/ctl" > "$work/out" 2>> "$work/clients.log" & holder=$!
  exec {ctl}> "$work/ctl"
  for _ in $(seq 1200); do
    grep -q '^held=' "$work/out" && break
    kill -0 "$holder" 2>/dev/null || { echo "idle-tls-clients exited: $(tail -3 "$work/clients.log")" >&2; exit 1; }
    sleep 0.1
  done
  held=$(sed -n 's/^held=\([0-9]*\).*/\1/p' "$work/out")
  [[ -n $held && $held -gt 0 ]] || { echo "no connection held: $(tail -3 "$work/clients.log")" >&2; exit 1; }
  sleep 1
}
# Closes them (the end of the clients' stdin) and waits until every one has closed.
release() { exec {ctl}>&-; wait "$holder" || true; }

printf 'Idle TLS connections: %s, each after one HTTP request; VmRSS of the proxy, all its processes.\n\n' "$N"
printf '| proxy | before | %s held | per connection | 2 s after close | growth returned | held again |\n' "$N"
printf '|---|---|---|---|---|---|---|\n'
peers=()
for relay in $RELAYS; do peers+=("full-proxy, relay = \"$relay\"|start_full_proxy|$relay"); done
peers+=("HAProxy $(haproxy -v | awk 'NR == 1 { sub(/-.*/, "", $3); print $3 }')|start_haproxy|")
peers+=("nginx $(nginx -v 2>&1 | sed 's|.*/||') stream|start_nginx_stream|")
for peer in "${peers[@]}"; do
  IFS='|' read -r label start arg <<<"$peer"
  port=$(free_port)
  "$start" "$port" "$arg"; pid=$!; pids+=("$pid")
  wait_port 127.0.0.1 "$port"
  "$clients" "127.0.0.1:$port" "$name" 100 --request < /dev/null > /dev/null 2>> "$work/clients.log" || true
  sleep 1
  before=$(rss_kb "$pid")
  hold "$port"; during=$(rss_kb "$pid"); n=$held
  release; sleep 2
  after=$(rss_kb "$pid")
  hold "$port"; again=$(rss_kb "$pid"); release
  kill "$pid"; wait "$pid" 2>/dev/null || true
  note=; ((n == N)) || note=" (only $n held)"
  awk -v l="$label" -v note="$note" -v n="$n" -v b="$before" -v d="$during" -v a="$after" -v g="$again" 'BEGIN {
    per = (d - b) * 1024 / n; back = d > b ? 100 * (d - a) / (d - b) : 0; if (back > -0.5 && back < 0.5) back = 0
    printf "| %s | %.1f MB | %.1f MB%s | %d B (%.1f KiB) | %.1f MB | %.0f %% | %.1f MB |\n",
      l, b / 1024, d / 1024, note, per, per / 1024, a / 1024, back, g / 1024 }'
done
# A kernel that refused io_uring makes the "uring" row a splice one: full-proxy says so in its log.
if grep -q "io_uring" "$work/full-proxy.log" 2>/dev/null; then
  printf '\nfull-proxy said: %s\n' "$(grep -m1 "io_uring" "$work/full-proxy.log")"
fi
