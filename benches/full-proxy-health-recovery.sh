#!/usr/bin/env bash
# How soon a restarted backend gets traffic again: full-proxy (health interval 1s, rise 2, fall 2)
# against HAProxy 2.6 (check inter 1s rise 2 fall 2), in one run, in front of the same two small
# HTTP backends on [::1]. A client sends a request every 50 ms through each proxy; backend b is
# killed, stays away until both proxies have taken it out, and is started again. Measured: from
# the restarted backend's listen() to the first request it serves through each proxy, repeated
# REPEATS times (default 5). Run by hand, not in CI:   bash benches/full-proxy-health-recovery.sh
# Needs haproxy and python3 (apt-get install -y haproxy) and prints each run, then mean and max
# per proxy, with full-proxy's ratio to HAProxy.
set -euo pipefail
cd "$(dirname "$0")/.."
for p in haproxy python3; do command -v "$p" >/dev/null || { echo "needs $p" >&2; exit 1; }; done
REPEATS=${REPEATS:-5}
cargo build --release -q --example full-proxy
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing on $1:$2" >&2; exit 1; }

# A backend: logs "listen <t>" once listening, then "<t> <path>" for each request it answers;
# t is CLOCK_MONOTONIC, one clock for every process of the machine. Health checks connect and
# close without a request: not logged.
cat > "$work/backend.py" <<'PY'
import http.server, socket, sys, time
port, log = int(sys.argv[1]), open(sys.argv[2], "a", buffering=1)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        log.write(f"{time.monotonic():.6f} {self.path}\n")
        self.send_response(200); self.send_header("Content-Length", "3"); self.end_headers()
        self.wfile.write(b"ok\n")
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
server = Server(("::1", port), Handler)  # binds and listens
log.write(f"listen {time.monotonic():.6f}\n")
server.serve_forever()
PY
# The client: every 50 ms one request through each proxy (a new connection each), answers ignored.
cat > "$work/client.py" <<'PY'
import socket, sys, threading, time
def load(port, path):
    tick = time.monotonic()
    while True:
        try:
            with socket.create_connection(("::1", port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\nHost: bench.test\r\n\r\n".encode())
                while s.recv(4096):
                    pass
        except OSError:
            pass
        tick += 0.05
        time.sleep(max(0.0, tick - time.monotonic()))
        tick = max(tick, time.monotonic() - 0.05)
for port, path in ((int(sys.argv[1]), "/ours"), (int(sys.argv[2]), "/theirs")):
    threading.Thread(target=load, args=(port, path), daemon=True).start()
threading.Event().wait()
PY

a=$(free_port); b=$(free_port); ours=$(free_port); theirs=$(free_port)
python3 "$work/backend.py" "$a" "$work/a.log" & pids+=($!)
python3 "$work/backend.py" "$b" "$work/b-0.log" & pids+=($!); b_pid=$!
wait_port ::1 "$a"; wait_port ::1 "$b"
cat > "$work/haproxy.cfg" <<CONF
global
  maxconn 1000
defaults
  mode tcp
  timeout connect 1s
  timeout client 5s
  timeout server 5s
frontend bench
  bind [::1]:$theirs
  default_backend two
backend two
  balance roundrobin
  server a [::1]:$a check inter 1s rise 2 fall 2
  server b [::1]:$b check inter 1s rise 2 fall 2
CONF
haproxy -db -f "$work/haproxy.cfg" 2>"$work/haproxy.log" & pids+=($!)
cat > "$work/sixgate.toml" <<CONF
[[listen]]
addresses = ["[::1]:$ours"]
mode = "http"
[[route]]
hosts = ["*"]
backends = [{ address = "[::1]:$a" }, { address = "[::1]:$b" }]
health = { interval = "1s", timeout = "1s", rise = 2, fall = 2 }
CONF
RUST_LOG=warn ./target/release/examples/full-proxy --config "$work/sixgate.toml" 2>"$work/full-proxy.log" & pids+=($!)
wait_port ::1 "$theirs"; wait_port ::1 "$ours"
python3 "$work/client.py" "$ours" "$theirs" & pids+=($!)

# Seconds from the listen in log $1 to its first request with path $2; empty until there is one.
since_listen() { [[ -f $1 ]] || return 0; awk -v path="$2" '$1 == "listen" { t = $2 } $2 == path { printf "%.3f", $1 - t; exit }' "$1"; }
# Waits until log $1 has a request through both proxies (10 s at most).
wait_both() {
  for _ in $(seq 200); do
    [[ -n $(since_listen "$1" /ours) && -n $(since_listen "$1" /theirs) ]] && return 0
    sleep 0.05
  done
  echo "no request through both proxies in $1 after 10 s" >&2; exit 1
}

wait_both "$work/b-0.log"
results=()
for run in $(seq "$REPEATS"); do
  # Away for 4 s: both proxies see fall (2) failed checks 1 s apart, so rise applies on return.
  kill -9 "$b_pid"; wait "$b_pid" 2>/dev/null || true
  sleep 4
  python3 "$work/backend.py" "$b" "$work/b-$run.log" & pids+=($!); b_pid=$!
  wait_both "$work/b-$run.log"
  o=$(since_listen "$work/b-$run.log" /ours); h=$(since_listen "$work/b-$run.log" /theirs)
  printf 'run %d: full-proxy %s s, HAProxy %s s\n' "$run" "$o" "$h"
  results+=("$o $h")
  sleep 1
done
printf '%s\n' "${results[@]}" | awk -v n="$REPEATS" '
  { o += $1; h += $2; if ($1 > om) om = $1; if ($2 > hm) hm = $2 }
  END {
    printf "\n| proxy | mean s | max s |\n|---|---|---|\n"
    printf "| HAProxy 2.6 (inter 1s rise 2 fall 2) | %.2f | %.2f |\n", h / n, hm
    printf "| full-proxy (interval 1s rise 2 fall 2) | %.2f | %.2f |\n", o / n, om
    printf "\nfull-proxy / HAProxy, mean: %.2f×  (%d runs)\n", o / h, n
  }'
