#!/usr/bin/env bash
# A full-proxy configuration at hosting scale: one [[route]] per customer, each with one name and
# one `*.domain` (customer N owns cN.hosting.test and *.cN.hosting.test) and 2 IPv6 backends.
#     bash benches/gen-routes.sh ROUTES [SERVERS] [PORT] > sixgate.toml
# SERVERS (default 2 x ROUTES): how many backend addresses the customers are spread over. Customer
# N is served by servers 2N and 2N+1, modulo SERVERS: with the default every route has its own two
# backends (the worst case for pool sharing); with SERVERS = 1000 the 100,000 customers sit on 500
# server pairs, as on a real hosting rack. PORT (default 8443) is the one TLS listener, on ::1.
# Used by benches/full-proxy-routes-scale.sh; takes well under a second for 100,000 routes.
set -euo pipefail
routes=${1:?usage: gen-routes.sh ROUTES [SERVERS] [PORT]}
servers=${2:-$((2 * routes))}
port=${3:-8443}
[[ $routes =~ ^[0-9]+$ && $servers =~ ^[0-9]+$ && $servers -ge 2 && $port =~ ^[0-9]+$ ]] || {
  echo "ROUTES, SERVERS and PORT are whole numbers (SERVERS at least 2)" >&2
  exit 2
}
awk -v routes="$routes" -v servers="$servers" -v port="$port" 'BEGIN {
  printf "# %d routes over %d backend addresses, made by benches/gen-routes.sh\n", routes, servers
  printf "[[listen]]\naddresses = [\"[::1]:%d\"]\nmode = \"tls\"\n", port
  for (i = 0; i < routes; i++) {
    a = (2 * i) % servers; b = (2 * i + 1) % servers
    # Server s is 2001:db8:<s / 65536>:<s % 65536>::10, in hex.
    printf "\n[[route]]\nhosts = [\"c%d.hosting.test\", \"*.c%d.hosting.test\"]\n", i, i
    printf "backends = [\n  { address = \"2001:db8:%x:%x::10\" },\n", int(a / 65536), a % 65536
    printf "  { address = \"2001:db8:%x:%x::10\" },\n]\n", int(b / 65536), b % 65536
  }
}'
