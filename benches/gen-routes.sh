#!/usr/bin/env bash
# A configuration at hosting scale: one route per customer, each with one name and one `*.domain`
# (customer N owns cN.hosting.test and *.cN.hosting.test) and 2 IPv6 backends.
#     bash benches/gen-routes.sh ROUTES [SERVERS] [PORT] > sixgate.toml
#     FORMAT=haproxy MAPS=DIR bash benches/gen-routes.sh ROUTES [SERVERS] [PORT] > haproxy.cfg
# SERVERS (default 2 x ROUTES): how many backend addresses the customers are spread over. Customer
# N is served by servers 2N and 2N+1, modulo SERVERS: with the default every route has its own two
# backends (the worst case for pool sharing); with SERVERS = 1000 the 100,000 customers sit on 500
# server pairs, as on a real hosting rack. PORT (default 8443) is the one TLS listener, on ::1.
# FORMAT (environment; default toml, full-proxy's file) writes the same customers for a peer, as
# its operators would: `nginx` the stream block of an nginx.conf (a `map … hostnames` to one
# upstream per server pair, ssl_preread), `haproxy` a haproxy.cfg (one backend per server pair,
# chosen by req.ssl_sni in the map files of the folder MAPS: names.map for exact names, then
# suffixes.map for `.domain` suffixes) and `names` and `suffixes` those two map files.
# Used by benches/full-proxy-routes-scale.sh; takes well under a second for 100,000 routes.
set -euo pipefail
routes=${1:?usage: gen-routes.sh ROUTES [SERVERS] [PORT]}
servers=${2:-$((2 * routes))}
port=${3:-8443}
format=${FORMAT:-toml}
[[ $routes =~ ^[0-9]+$ && $servers =~ ^[0-9]+$ && $servers -ge 2 && $port =~ ^[0-9]+$ ]] || {
  echo "ROUTES, SERVERS and PORT are whole numbers (SERVERS at least 2)" >&2
  exit 2
}
[[ $format =~ ^(toml|nginx|haproxy|names|suffixes)$ ]] || { echo "FORMAT is toml, nginx, haproxy, names or suffixes" >&2; exit 2; }
[[ $format != haproxy || -n ${MAPS:-} ]] || { echo "FORMAT=haproxy needs MAPS, the map files' folder" >&2; exit 2; }
awk -v routes="$routes" -v servers="$servers" -v port="$port" -v format="$format" -v maps="${MAPS:-}" '
# Server s is 2001:db8:<s / 65536>:<s % 65536>::10, in hex.
function server(s) { return sprintf("2001:db8:%x:%x::10", int(s / 65536), s % 65536) }
# Customer i is served by servers first(i) and first(i) + 1; a peer has one pool per pair.
function first(i) { return (2 * i) % servers }
function pair(i) { return "p" first(i) }
function pairs(   i, a, b, seen) {
  for (i = 0; i < routes; i++) {
    if (pair(i) in seen) continue
    seen[pair(i)]; a = server(first(i)); b = server((first(i) + 1) % servers)
    if (format == "nginx") printf "  upstream %s { server [%s]:443; server [%s]:443; }\n", pair(i), a, b
    else printf "backend %s\n  server a [%s]:443\n  server b [%s]:443\n", pair(i), a, b
  }
}
BEGIN {
  if (format == "toml") {
    printf "# %d routes over %d backend addresses, made by benches/gen-routes.sh\n", routes, servers
    printf "[[listen]]\naddresses = [\"[::1]:%d\"]\nmode = \"tls\"\n", port
    for (i = 0; i < routes; i++) {
      printf "\n[[route]]\nhosts = [\"c%d.hosting.test\", \"*.c%d.hosting.test\"]\n", i, i
      printf "backends = [\n  { address = \"%s\" },\n", server(first(i))
      printf "  { address = \"%s\" },\n]\n", server((first(i) + 1) % servers)
    }
  } else if (format == "nginx") {
    printf "stream {\n  map_hash_max_size %d;\n  map_hash_bucket_size 128;\n", 8 * routes + 64
    printf "  map $ssl_preread_server_name $pair {\n    hostnames;\n"
    for (i = 0; i < routes; i++) printf "    c%d.hosting.test %s;\n    *.c%d.hosting.test %s;\n", i, pair(i), i, pair(i)
    printf "  }\n"
    pairs()
    printf "  server { listen [::1]:%d; ssl_preread on; proxy_pass $pair; }\n}\n", port
  } else if (format == "names") {
    for (i = 0; i < routes; i++) printf "c%d.hosting.test %s\n", i, pair(i)
  } else if (format == "suffixes") {
    for (i = 0; i < routes; i++) printf ".c%d.hosting.test %s\n", i, pair(i)
  } else {
    # maxconn as the worker_connections of nginx (left out, it would follow `ulimit -n`).
    printf "global\n  maxconn 1024\ndefaults\n  mode tcp\n  timeout connect 3s\n  timeout client 300s\n  timeout server 300s\n"
    printf "frontend tls\n  bind [::1]:%d\n  tcp-request inspect-delay 5s\n", port
    printf "  tcp-request content accept if { req.ssl_hello_type 1 }\n"
    printf "  use_backend %%[req.ssl_sni,lower,map(%s/names.map)] if { req.ssl_sni,lower,map(%s/names.map) -m found }\n", maps, maps
    printf "  use_backend %%[req.ssl_sni,lower,map_end(%s/suffixes.map)]\n", maps
    pairs()
  }
}'
