//! full-proxy as a stateful NAT64 (RFC 6146), as an operator runs it for a rack of IPv6-only
//! servers: two hosts in different /64s (h6's two addresses) share one pool4 address, each in
//! its own port block, reaching nginx on the IPv4-only host h4.
//!
//! Layout under test: customers 2001:db8:6::/63 cut into /64 blocks of 2016 ports on
//! 192.0.2.16/29 (the first of the pool's addresses serves both blocks):
//! block 0 = 2001:db8:6::/64 → 192.0.2.16 ports 1024–3039,
//! block 1 = 2001:db8:6:1::/64 → 192.0.2.16 ports 3040–5055.

#[path = "support/example_binary.rs"]
mod example_binary;
#[path = "support/nat64_rig.rs"]
mod nat64_rig;
#[path = "support/netns.rs"]
mod netns;
mod peers;

use core::net::SocketAddr;
use core::time::Duration;
use std::net::TcpStream;
use std::process::Command;

use nat64_rig::*;
use netns::Netns;
use peers::pattern;

const POOL4_ADDR: &str = "192.0.2.16";
/// The second customer /64, on h6's link too: its own host, as far as the NAT64 can tell.
const HOST_B: &str = "2001:db8:6:1::10";
const HOST_A: &str = "2001:db8:6::10";
const BLOCK_A: core::ops::RangeInclusive<u16> = 1024..=3039;
const BLOCK_B: core::ops::RangeInclusive<u16> = 3040..=5055;

fn keys(extra: &str) -> String {
    format!(
        "mode = \"stateful\"\npool4 = [\"192.0.2.16/29\"]\ncustomers = [\"2001:db8:6::/63\"]\n\
         ports = \"1024-65535\"\nblock_prefix_len = 64\nports_per_block = 2016\nrefuse_ports = [25]\n{extra}"
    )
}

/// Puts the second customer /64 on h6's link (and xl's side of it).
fn second_host(net: &Netns) {
    // Deprecated, as h6's second address is: a source only for a socket that binds it (curl
    // --interface), never the kernel's own choice.
    net.ip(
        &net.h6,
        &format!(
            "addr add {HOST_B}/64 dev {} nodad preferred_lft 0",
            net.h6_link
        ),
    );
    net.ip(
        &net.xl,
        &format!("addr add 2001:db8:6:1::1/64 dev {} nodad", net.xl_to_h6),
    );
    net.ip(
        &net.xl,
        &format!(
            "neigh replace {HOST_B} lladdr 02:00:00:00:06:10 dev {} nud permanent",
            net.xl_to_h6
        ),
    );
}

/// `curl` from h6 with source address `from`.
fn curl_from(net: &Netns, tools: &Tools, from: &str, url: &str, gw: &Gateway<'_>) -> Vec<u8> {
    let out = net.exec(
        &net.h6,
        &tools.curl,
        &[
            "-sS",
            "--fail",
            "-g",
            "--max-time",
            "15",
            "--interface",
            from,
            url,
        ],
    );
    assert!(
        out.status.success(),
        "curl from {from} {url}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.log()
    );
    out.stdout
}

/// What `full-proxy --config F --nat64-lookup ADDR:PORT` prints, and whether it succeeded.
fn lookup(tools: &Tools, gw: &Gateway<'_>, port: u16) -> (bool, String) {
    let out = Command::new(&tools.gateway)
        .args(["--config", &gw.config_path(), "--nat64-lookup"])
        .arg(format!("{POOL4_ADDR}:{port}"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn start<'a>(net: &'a Netns, tools: &'a Tools, extra: &str) -> Option<Gateway<'a>> {
    if tools.lacks("stateful NAT64") {
        return None;
    }
    second_host(net);
    Some(Gateway::start_stateful(net, tools, &keys(extra)))
}

fn connect(net: &Netns, to: SocketAddr) -> std::io::Result<TcpStream> {
    net.within(&net.h6, || {
        TcpStream::connect_timeout(&to, Duration::from_secs(5))
    })
}

#[test]
fn two_hosts_share_one_pool_address_each_in_its_own_port_block() {
    let Some((net, tools)) = setup() else { return };
    let Some(gw) = start(&net, &tools, "") else {
        return;
    };
    let web4 = Nginx::start(&net, &tools, &net.h4, &[("hello", b"hello from h4\n")]);
    let url = format!("http://[{H4_AS_V6}]:{HTTP_PORT}/hello");

    assert_eq!(
        curl_from(&net, &tools, HOST_A, &url, &gw),
        b"hello from h4\n"
    );
    assert_eq!(
        curl_from(&net, &tools, HOST_B, &url, &gw),
        b"hello from h4\n"
    );
    let seen = web4.client_ports(2);
    assert_eq!(seen.len(), 2, "{seen:?}\n{}", gw.log());
    let (a, b) = (&seen[0], &seen[1]);
    assert_eq!((a.0.as_str(), b.0.as_str()), (POOL4_ADDR, POOL4_ADDR));
    assert!(BLOCK_A.contains(&a.1), "host A came from port {}", a.1);
    assert!(BLOCK_B.contains(&b.1), "host B came from port {}", b.1);

    // The abuse desk's question, answered from the configuration alone.
    let (ok, text) = lookup(&tools, &gw, a.1);
    assert!(ok && text.contains("2001:db8:6::/64"), "{text}");
    let (ok, text) = lookup(&tools, &gw, b.1);
    assert!(ok && text.contains("2001:db8:6:1::/64"), "{text}");
    let (ok, text) = lookup(&tools, &gw, 6000);
    assert!(!ok, "port 6000 has no customer: {text}");

    // ICMP echo shares the block too (its identifier is the port).
    let out = ping(&net, &tools, &net.h6, &[H4_AS_V6]);
    assert!(
        out.contains(&format!("bytes from {H4_AS_V6}: icmp_seq=1")),
        "{out}\n{}",
        gw.log()
    );

    let m = gw.metrics();
    assert!(
        counter(&m, "sixgate_nat64_sessions_opened_total", "") >= 3,
        "{m}"
    );
}

#[test]
fn unsolicited_inbound_is_dropped_and_udp_sessions_expire() {
    let Some((net, tools)) = setup() else { return };
    let Some(gw) = start(
        &net,
        &tools,
        "udp_timeout = \"3s\"\nallow_short_timeouts = true\n",
    ) else {
        return;
    };
    let h4 = udp(&net, &net.h4, "0.0.0.0:5000");
    let h6 = udp(&net, &net.h6, "[::]:0");

    // Nothing maps 192.0.2.16:2000 yet: dropped, counted.
    h4.send_to(b"knock", addr(POOL4_ADDR, 2000)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        counter(
            &gw.metrics(),
            "sixgate_nat64_drops_total",
            "reason=\"no-session\""
        ) >= 1
    );

    let request = pattern(600, 1);
    h6.send_to(&request, addr(H4_AS_V6, 5000)).unwrap();
    let (got, from) = recv(&h4).unwrap_or_else(|| panic!("nothing reached h4\n{}", gw.log()));
    assert_eq!(got, request);
    assert_eq!(from.ip().to_string(), POOL4_ADDR);
    assert!(BLOCK_A.contains(&from.port()), "{from}");

    let reply = pattern(700, 2);
    h4.send_to(&reply, from).unwrap();
    let (got, back) = recv(&h6).unwrap_or_else(|| panic!("no reply reached h6\n{}", gw.log()));
    assert_eq!(got, reply);
    assert_eq!(endpoint(back), endpoint(addr(H4_AS_V6, 5000)));

    // Past the 3 s timeout and a turn of the expiry clock, the mapping is gone.
    std::thread::sleep(Duration::from_secs(5));
    h4.send_to(&reply, from).unwrap();
    assert!(
        recv(&h6).is_none(),
        "an expired session still let a datagram in"
    );
    let m = gw.metrics();
    assert!(
        counter(&m, "sixgate_nat64_sessions_expired_total", "") >= 1,
        "{m}"
    );
}

#[test]
fn a_refused_port_gets_administratively_prohibited() {
    let Some((net, tools)) = setup() else { return };
    let Some(gw) = start(&net, &tools, "") else {
        return;
    };
    let to = addr(H4_AS_V6, 25);
    let err = connect(&net, to).expect_err("port 25 must be refused");
    // ICMPv6 1/1 (administratively prohibited) is EACCES to the connecting host.
    assert_eq!(
        err.raw_os_error(),
        Some(libc::EACCES),
        "{err}\n{}",
        gw.log()
    );
    let m = gw.metrics();
    assert!(
        counter(&m, "sixgate_nat64_drops_total", "reason=\"port-refused\"") >= 1,
        "{m}"
    );
}

#[test]
fn a_host_over_its_session_limit_is_refused_while_the_other_still_connects() {
    let Some((net, tools)) = setup() else { return };
    let Some(gw) = start(&net, &tools, "max_sessions_per_block = 2\n") else {
        return;
    };
    let _web4 = Nginx::start(&net, &tools, &net.h4, &[("hello", b"hello from h4\n")]);
    let to = addr(H4_AS_V6, HTTP_PORT);
    let held: Vec<TcpStream> = (0..2)
        .map(|i| connect(&net, to).unwrap_or_else(|e| panic!("connection {i}: {e}\n{}", gw.log())))
        .collect();
    let err = connect(&net, to).expect_err("a third session of block 0 must be refused");
    assert_eq!(
        err.raw_os_error(),
        Some(libc::EACCES),
        "{err}\n{}",
        gw.log()
    );

    let url = format!("http://[{H4_AS_V6}]:{HTTP_PORT}/hello");
    assert_eq!(
        curl_from(&net, &tools, HOST_B, &url, &gw),
        b"hello from h4\n"
    );
    let m = gw.metrics();
    assert!(
        counter(&m, "sixgate_nat64_drops_total", "reason=\"session-limit\"") >= 1,
        "{m}"
    );
    drop(held);
}
