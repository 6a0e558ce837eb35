#!/usr/bin/env bash
# full-proxy against HAProxy 2.6: same nginx backend, same machine, same wrk load, one run.
# Run by hand, not in CI:   bash benches/full-proxy-vs-haproxy.sh
# Three scenarios (SCENARIOS="tcp forwarding relays" by default; name one to run it alone):
#   tcp         HAProxy mode tcp + send-proxy-v2 against a proxy_protocol = "v2" route: requests/s,
#               p50/p99 latency and peak RSS, with full-proxy's ratio to HAProxy.
#   forwarding  the client's address in every HTTP/1 request (issue 12), to a plain nginx server:
#               keep-alive 1 KiB GETs through HAProxy mode http + option forwardfor, full-proxy
#               with forwarded = "x-forwarded-for", and full-proxy with forwarded off; then 1 MiB
#               POST uploads with forwarded on and off. Requests/s and the proxy's CPU time per
#               request (utime + stime of the whole process, from /proc/PID/stat), as ratios.
#               Both proxies insert X-Forwarded-For alone; FORWARDED_PROTO=1 makes both add
#               X-Forwarded-Proto too.
#   relays      the relay's own cost (issue 14): clients straight to nginx ("direct", the limit),
#               through HAProxy mode tcp (TLS after req.ssl_hello_type, as it routes on SNI), and
#               through one full-proxy per relay in RELAYS (default "splice copy uring"), each its own
#               process: keep-alive 1 KiB over HTTP and over TLS (never terminated), keep-alive
#               1 MiB, a new connection per 1 KiB request. Requests/s against direct and the
#               proxy's CPU per request against HAProxy's, as ratios.
# Needs haproxy, nginx, wrk, curl, python3, and openssl for relays (apt-get install -y haproxy nginx
# wrk curl python3 openssl); skips with a message without them. SECONDS_PER_RUN (default 10) is the
# length of each wrk run: the default takes about six minutes. RELAY=copy runs the tcp and
# forwarding scenarios' full-proxy with relay = "copy".
set -euo pipefail
cd "$(dirname "$0")/.."
for p in haproxy nginx wrk curl python3; do
  command -v "$p" >/dev/null || { echo "SKIPPED: $0 needs $p (apt-get install -y haproxy nginx wrk curl python3)"; exit 0; }
done
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
SCENARIOS=${SCENARIOS:-tcp forwarding relays}
RELAYS=${RELAYS:-splice copy uring}
FORWARDED_PROTO=${FORWARDED_PROTO:-0}
runs() { [[ " $SCENARIOS " == *" $1 "* ]]; }
cargo build --release -q --example full-proxy
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing on $1:$2" >&2; exit 1; }

# backend: nginx behind PROXY v2 (tcp); plain: the same nginx without PROXY (forwarding).
backend=$(free_port); plain=$(free_port); ours=$(free_port); theirs=$(free_port)
theirs_http=$(free_port); fwd_on=$(free_port); fwd_off=$(free_port)
head -c 1024 /dev/zero > "$work/1k"; head -c 1048576 /dev/zero > "$work/1m"
cat > "$work/nginx.conf" <<CONF
daemon off; master_process off; pid $work/nginx.pid; error_log $work/nginx.log;
events { worker_connections 4096; }
http { access_log off; sendfile on; keepalive_requests 100000;
  client_body_temp_path $work/b; proxy_temp_path $work/p; fastcgi_temp_path $work/f; uwsgi_temp_path $work/u; scgi_temp_path $work/s;
  server { listen [::1]:$backend proxy_protocol; root $work; }
  server { listen [::1]:$plain; root $work;
    # An upload is read whole before its answer (the mirror reads the body): an answer sent early
    # would leave wrk writing the rest of the body after it, and wrk then stalls.
    client_max_body_size 2m; client_body_buffer_size 2m;
    location = /upload { mirror /sink; mirror_request_body on; error_page 404 405 =200 /ok; }
    location = /sink { internal; return 204; }
    location = /ok { internal; return 200 "ok\n"; }
    # What a request arrived with: shows which forwarding fields each proxy wrote.
    location = /fields { return 200 "x-forwarded-for: \$http_x_forwarded_for; x-forwarded-proto: \$http_x_forwarded_proto\n"; }
  } }
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

# The forwarding scenario's proxies, each a process of its own so that its CPU time is its own.
# HAProxy 2.6 keeps client connections alive and reuses server ones ("http-reuse safe") by default.
if ((FORWARDED_PROTO)); then proto=true; set_proto="http-request set-header X-Forwarded-Proto http"; else proto=false; set_proto=""; fi
cat > "$work/haproxy-http.cfg" <<CONF
global
  maxconn 4000
defaults
  mode http
  timeout connect 3s
  timeout client 5m
  timeout server 5m
frontend bench
  bind 127.0.0.1:$theirs_http
  option forwardfor
  $set_proto
  default_backend nginx
backend nginx
  server n [::1]:$plain
CONF
haproxy -db -f "$work/haproxy-http.cfg" & pids+=($!); haproxy_http_pid=$!
# One full-proxy, two listeners: forwarded on one, off on the other (runs are one at a time).
cat > "$work/sixgate-forwarding.toml" <<CONF
[[listen]]
name = "on"
addresses = ["127.0.0.1:$fwd_on"]
mode = "http"
[[listen]]
name = "off"
addresses = ["127.0.0.1:$fwd_off"]
mode = "http"
[[route]]
hosts = ["*"]
listeners = ["on"]
forwarded = "x-forwarded-for"
forwarded_proto = $proto
backends = [{ address = "[::1]:$plain" }]
[[route]]
hosts = ["*"]
listeners = ["off"]
backends = [{ address = "[::1]:$plain" }]
[limits]
relay = "${RELAY:-splice}"
CONF
RUST_LOG=warn ./target/release/examples/full-proxy --config "$work/sixgate-forwarding.toml" & pids+=($!); fwd_pid=$!
for port in "$backend" "$plain"; do wait_port ::1 "$port"; done
for port in "$theirs" "$ours" "$theirs_http" "$fwd_on" "$fwd_off"; do wait_port 127.0.0.1 "$port"; done

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
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a/b; else print "-" }'; }

if runs tcp; then
  printf '| load | HAProxy req/s | full-proxy req/s | ratio | HAProxy p50/p99 ms | full-proxy p50/p99 ms |\n|---|---|---|---|---|---|\n'
  for load in "new connection per request, 1 KiB|/1k|32|Connection: close" "keep-alive, 1 KiB|/1k|32|" "keep-alive, 1 MiB|/1m|8|"; do
    IFS='|' read -r name path conns header <<<"$load"
    read -r h_rps h_p50 h_p99 <<<"$(measure "$theirs" "$path" "$conns" "$header")"
    read -r o_rps o_p50 o_p99 <<<"$(measure "$ours" "$path" "$conns" "$header")"
    printf '| %s | %s | %s | %s× | %s / %s | %s / %s |\n' "$name" "$h_rps" "$o_rps" "$(ratio "$o_rps" "$h_rps")" "$h_p50" "$h_p99" "$o_p50" "$o_p99"
  done
  h_rss=$(rss_kb "$haproxy_pid"); o_rss=$(rss_kb "$ours_pid")
  printf '\nPeak RSS: HAProxy %s KiB, full-proxy %s KiB (%s×)\n' "$h_rss" "$o_rss" "$(ratio "$o_rss" "$h_rss")"
fi

# CPU time of a whole process (every thread), in clock ticks: utime and stime, fields 14 and 15
# of /proc/PID/stat, counted after the ")" that ends the command name.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'; }
hz=$(getconf CLK_TCK)
problems=()
# One wrk run, printed as a table row: sets rps (requests/s) and cpu (the proxy's CPU µs per
# request; "-" without a pid, for clients straight to the origin), shown with the share of it
# spent in the kernel (system calls and the TCP work they do: what a relay cannot save by making
# fewer calls). A response that is no 2xx, or
# a socket error, is noted: 400s or resets would make a rate mean nothing. Not run in $(...), so
# that the note stays. Extra columns, if any, come from the function named by $columns.
measure_cpu() { # label pid url connections [wrk options]
  local label=$1 pid=$2 url=$3 conns=$4 before="0 0" after="0 0" out n bad user system kernel=""
  shift 4
  [[ -z $pid ]] || before=$(cpu_ticks "$pid")
  out=$(wrk -t2 -c"$conns" -d"${SECONDS_PER_RUN}s" "$@" "$url")
  [[ -z $pid ]] || after=$(cpu_ticks "$pid")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  read -r user system <<<"$(awk -v b="$before" -v a="$after" 'BEGIN { split(b, x, " "); split(a, y, " "); print y[1] - x[1], y[2] - x[2] }')"
  cpu=$(awk -v p="$pid" -v t=$((user + system)) -v hz="$hz" -v n="$n" 'BEGIN { if (p != "" && n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }')
  ((user + system == 0)) || kernel=" ($((100 * system / (user + system))) % kernel)"
  bad=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' || true)
  [[ -z $bad ]] || problems+=("$table, $label:$bad")
  printf '| %s | %s | %s%s |%s\n' "$label" "$rps" "$cpu" "$kernel" "$(${columns:-true})"
}

if runs forwarding; then
  cat > "$work/upload.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
  # Each proxy's fields, as the backend saw them: a full-proxy without them is not yet inserting.
  for p in "HAProxy|$theirs_http" "full-proxy, forwarded on|$fwd_on" "full-proxy, forwarded off|$fwd_off"; do
    IFS='|' read -r name port <<<"$p"
    printf '%s -> %s\n' "$name" "$(curl -sS "http://127.0.0.1:$port/fields")"
  done
  curl -sS "http://127.0.0.1:$fwd_on/fields" | grep -q 'x-forwarded-for: 127.0.0.1;' \
    || problems+=("full-proxy with forwarded on did not write X-Forwarded-For: its numbers are those of a plain relay")

  fields="X-Forwarded-For"
  if ((FORWARDED_PROTO)); then fields+=" and X-Forwarded-Proto"; fi
  table="GET"
  printf '\n| keep-alive 1 KiB GET, 32 connections (%s) | req/s | proxy CPU µs/request |\n|---|---|---|\n' "$fields"
  measure_cpu "HAProxy 2.6, mode http + option forwardfor" "$haproxy_http_pid" "http://127.0.0.1:$theirs_http/1k" 32
  h_rps=$rps h_cpu=$cpu
  measure_cpu 'full-proxy, forwarded = "x-forwarded-for"' "$fwd_pid" "http://127.0.0.1:$fwd_on/1k" 32
  on_rps=$rps on_cpu=$cpu
  measure_cpu "full-proxy, forwarded off" "$fwd_pid" "http://127.0.0.1:$fwd_off/1k" 32
  off_rps=$rps off_cpu=$cpu
  printf '\nfull-proxy with forwarded against HAProxy: %s× the requests/s (goal ≥ 1), %s× the CPU per request (goal ≤ 1)\n' \
    "$(ratio "$on_rps" "$h_rps")" "$(ratio "$on_cpu" "$h_cpu")"
  printf 'full-proxy with forwarded against without: %s× the requests/s (goal ≥ 0.90), %s× the CPU per request\n' \
    "$(ratio "$on_rps" "$off_rps")" "$(ratio "$on_cpu" "$off_cpu")"

  table="upload"
  printf '\n| 1 MiB POST upload, 8 connections | req/s (MiB/s) | proxy CPU µs/request |\n|---|---|---|\n'
  measure_cpu 'full-proxy, forwarded = "x-forwarded-for"' "$fwd_pid" "http://127.0.0.1:$fwd_on/upload" 8 -s "$work/upload.lua"
  up_on_rps=$rps up_on_cpu=$cpu
  measure_cpu "full-proxy, forwarded off" "$fwd_pid" "http://127.0.0.1:$fwd_off/upload" 8 -s "$work/upload.lua"
  up_off_rps=$rps up_off_cpu=$cpu
  printf '\nUploads with forwarded against without: %s× the rate (goal ≥ 0.90), %s× the CPU per request\n' \
    "$(ratio "$up_on_rps" "$up_off_rps")" "$(ratio "$up_on_cpu" "$up_off_cpu")"
fi

if runs relays && ! command -v openssl >/dev/null; then
  problems+=("relays: skipped, it needs openssl for the TLS origin")
elif runs relays; then
  # The origin: the plain nginx server, and the same files over TLS (terminated by nginx only).
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=localhost" \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
  origin_tls=$(free_port)
  cat > "$work/nginx-tls.conf" <<CONF
daemon off; master_process off; pid $work/nginx-tls.pid; error_log $work/nginx-tls.log;
events { worker_connections 4096; }
http { access_log off; sendfile on; keepalive_requests 100000;
  client_body_temp_path $work/b; proxy_temp_path $work/p; fastcgi_temp_path $work/f; uwsgi_temp_path $work/u; scgi_temp_path $work/s;
  server { listen [::1]:$origin_tls ssl; ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem; root $work; } }
CONF
  nginx -p "$work" -c "$work/nginx-tls.conf" & pids+=($!)
  h_plain=$(free_port); h_tls=$(free_port)
  cat > "$work/haproxy-relay.cfg" <<CONF
global
  maxconn 4000
defaults
  mode tcp
  timeout connect 3s
  timeout client 5m
  timeout server 5m
frontend plain
  bind 127.0.0.1:$h_plain
  default_backend plain
frontend tls
  bind 127.0.0.1:$h_tls
  tcp-request inspect-delay 5s
  tcp-request content accept if { req.ssl_hello_type 1 }
  default_backend tls
backend plain
  server n [::1]:$plain
backend tls
  server n [::1]:$origin_tls
CONF
  haproxy -db -f "$work/haproxy-relay.cfg" & pids+=($!); haproxy_relay_pid=$!
  wait_port ::1 "$origin_tls"; wait_port 127.0.0.1 "$h_plain"; wait_port 127.0.0.1 "$h_tls"
  # One full-proxy per relay, each its own process so that its CPU time is its own.
  declare -A relay_pid relay_plain relay_tls
  started=""
  for relay in $RELAYS; do
    relay_plain[$relay]=$(free_port); relay_tls[$relay]=$(free_port)
    cat > "$work/sixgate-$relay.toml" <<CONF
[[listen]]
name = "plain"
addresses = ["127.0.0.1:${relay_plain[$relay]}"]
mode = "http"
[[listen]]
name = "tls"
addresses = ["127.0.0.1:${relay_tls[$relay]}"]
mode = "tls"
[[route]]
hosts = ["*"]
listeners = ["plain"]
backends = [{ address = "[::1]:$plain" }]
[[route]]
hosts = ["*"]
listeners = ["tls"]
backends = [{ address = "[::1]:$origin_tls" }]
[limits]
relay = "$relay"
CONF
    RUST_LOG=warn ./target/release/examples/full-proxy --config "$work/sixgate-$relay.toml" > "$work/$relay.log" 2>&1 & pids+=($!)
    relay_pid[$relay]=$!
    if (wait_port 127.0.0.1 "${relay_plain[$relay]}") 2>/dev/null; then
      started+=" $relay"
    else
      problems+=("full-proxy relay = \"$relay\" did not start: $(head -c 300 "$work/$relay.log")")
    fi
  done
  RELAYS=$started
  # Ratios in each row: requests/s against direct, CPU against HAProxy's.
  ratios() { printf ' %s× | %s× |' "$(ratio "$rps" "$d_rps")" "$(ratio "$cpu" "$h_cpu")"; }
  rate_ratio() { printf ' %s× | - |' "$(ratio "$rps" "$d_rps")"; }
  no_ratios() { printf ' - | - |'; }
  for load in "keep-alive 1 KiB, HTTP|http|/1k|32|" "keep-alive 1 KiB, TLS|https|/1k|32|" \
    "keep-alive 1 MiB, HTTP|http|/1m|8|" "new connection per 1 KiB request, HTTP|http|/1k|32|Connection: close"; do
    IFS='|' read -r name scheme path conns header <<<"$load"
    table=$name
    if [[ $scheme == https ]]; then origin="https://[::1]:$origin_tls"; h_port=$h_tls; else origin="http://[::1]:$plain"; h_port=$h_plain; fi
    printf '\n| %s, %s connections | req/s | proxy CPU µs/request | × direct req/s | × HAProxy CPU |\n|---|---|---|---|---|\n' "$name" "$conns"
    columns=no_ratios
    measure_cpu "direct (no proxy)" "" "$origin$path" "$conns" ${header:+-H "$header"}
    d_rps=$rps
    columns=rate_ratio
    measure_cpu "HAProxy 2.6, mode tcp" "$haproxy_relay_pid" "$scheme://127.0.0.1:$h_port$path" "$conns" ${header:+-H "$header"}
    h_cpu=$cpu
    columns=ratios
    for relay in $RELAYS; do
      if [[ $scheme == https ]]; then port=${relay_tls[$relay]}; else port=${relay_plain[$relay]}; fi
      measure_cpu "full-proxy, relay = \"$relay\"" "${relay_pid[$relay]}" "$scheme://127.0.0.1:$port$path" "$conns" ${header:+-H "$header"}
    done
    columns=""
  done
  # What each relay logged (a refused io_uring falls back to splice with a warning).
  for relay in $RELAYS; do
    if grep -q . "$work/$relay.log"; then problems+=("full-proxy relay = \"$relay\" said: $(head -c 300 "$work/$relay.log")"); fi
  done
fi
if ((${#problems[@]})); then
  printf '\nWarnings:\n'; printf '  %s\n' "${problems[@]}"
fi
