//! The NAT64 gateway of `examples/full-proxy` as an operator runs it: in a translator namespace
//! between an IPv6-only host and an IPv4-only host (see `support/netns.rs`), with ping, curl,
//! nginx and the tests' own sockets as the traffic.
//!
//! `SIXGATE_NAT64_PEER=tayga` runs the same tests against TAYGA instead, a known-good stateless
//! translator, to check the harness itself; the tests of full-proxy's own features (reload of a
//! bad file, metrics) skip there.

#[path = "support/example_binary.rs"]
mod example_binary;
#[path = "support/nat64_rig.rs"]
mod nat64_rig;
#[path = "support/netns.rs"]
mod netns;
mod peers;

use core::net::IpAddr;
use core::time::Duration;
use std::time::Instant;

use nat64_rig::*;
use peers::{Scratch, pattern};

#[test]
fn pings_cross_the_gateway_and_its_own_addresses_answer() {
    let Some((net, tools)) = setup() else { return };
    let gw = Gateway::start(&net, &tools, &[EAM_10]);
    let ping = |ns: &str, to: &str| ping(&net, &tools, ns, &[to]);

    // Three routers each way (xl's IPv6 side, the gateway, xl's IPv4 side): the reply's 64 - 3.
    let out = ping(&net.h6, H4_AS_V6);
    let want = format!("bytes from {H4_AS_V6}: icmp_seq=1 ttl=61");
    assert!(out.contains(&want), "{out}\n{}", gw.log());

    // No interface has the gateway's own addresses: only the gateway can answer them.
    let out = ping(&net.h6, OWN_V6);
    let want = format!("bytes from {OWN_V6}: icmp_seq=1 ");
    assert!(out.contains(&want), "{out}\n{}", gw.log());
    let out = ping(&net.h4, OWN_V4);
    let want = format!("bytes from {OWN_V4}: icmp_seq=1 ");
    assert!(out.contains(&want), "{out}\n{}", gw.log());

    // The EAM address is h6 itself: h6 counts the echo request it answered.
    let echoes = net.snmp6(&net.h6, "Icmp6InEchos");
    let out = ping(&net.h4, EAM_10.v4);
    let want = format!("bytes from {}: icmp_seq=1 ttl=61", EAM_10.v4);
    assert!(out.contains(&want), "{out}\n{}", gw.log());
    assert_eq!(net.snmp6(&net.h6, "Icmp6InEchos"), echoes + 1);
}

#[test]
fn udp_crosses_both_ways_with_mapped_addresses_and_intact_payloads() {
    let Some((net, tools)) = setup() else { return };
    let gw = Gateway::start(&net, &tools, &[EAM_10]);
    let h4 = udp(&net, &net.h4, "0.0.0.0:5000");
    let h6 = udp(&net, &net.h6, "[::]:0");
    let h6_port = h6.local_addr().unwrap().port();

    // h6 → h4: from h6's EAM address, ports untouched.
    let request = pattern(1000, 1);
    h6.send_to(&request, addr(H4_AS_V6, 5000)).unwrap();
    let (got, from) = recv(&h4).unwrap_or_else(|| panic!("nothing reached h4\n{}", gw.log()));
    assert_eq!(endpoint(from), endpoint(addr(EAM_10.v4, h6_port)));
    assert_eq!(got, request);

    // The reply goes back to where it came from.
    let reply = pattern(1200, 2);
    h4.send_to(&reply, from).unwrap();
    let (got, from) = recv(&h6).unwrap_or_else(|| panic!("no reply reached h6\n{}", gw.log()));
    assert_eq!(endpoint(from), endpoint(addr(H4_AS_V6, 5000)));
    assert_eq!(got, reply);

    // h4 → h6 first, to the EAM address: h6 sees h4 through the prefix.
    let h6_server = udp(&net, &net.h6, "[::]:6000");
    let hello = pattern(300, 3);
    h4.send_to(&hello, addr(EAM_10.v4, 6000)).unwrap();
    let (got, from) =
        recv(&h6_server).unwrap_or_else(|| panic!("nothing reached h6\n{}", gw.log()));
    assert_eq!(endpoint(from), endpoint(addr(H4_AS_V6, 5000)));
    assert_eq!(got, hello);
}

#[test]
fn http_crosses_both_ways_and_each_server_logs_the_mapped_client() {
    let Some((net, tools)) = setup() else { return };
    let gw = Gateway::start(&net, &tools, &[EAM_10]);
    let web4 = Nginx::start(&net, &tools, &net.h4, &[("hello", b"hello from h4\n")]);
    let web6 = Nginx::start(&net, &tools, &net.h6, &[("hello", b"hello from h6\n")]);

    let url = format!("http://[{H4_AS_V6}]:{HTTP_PORT}/hello");
    assert_eq!(curl(&net, &tools, &net.h6, &url, &gw), b"hello from h4\n");
    assert_eq!(web4.clients(1), [EAM_10.v4]);

    let url = format!("http://{}:{HTTP_PORT}/hello", EAM_10.v4);
    assert_eq!(curl(&net, &tools, &net.h4, &url, &gw), b"hello from h6\n");
    assert_eq!(web6.clients(1), [H4_AS_V6]);
}

#[test]
fn hop_limit_runs_out_at_the_gateway_which_answers_from_its_own_address() {
    let Some((net, tools)) = setup() else { return };
    let gw = Gateway::start(&net, &tools, &[EAM_10]);
    // Each router on the way takes one: xl forwarding IPv6 (before the TUN), the gateway, xl
    // forwarding IPv4. So the gateway is where a packet sent with 2 arrives with 1.
    let from_h6 = [
        (
            "1",
            "From 2001:db8:6::1 icmp_seq=1 Time exceeded: Hop limit".to_string(),
        ),
        (
            "2",
            format!("From {OWN_V6} icmp_seq=1 Time exceeded: Hop limit"),
        ),
        // xl's ICMPv4 error, translated: its source comes through the prefix.
        (
            "3",
            format!("From {XL4_AS_V6} icmp_seq=1 Time exceeded: Hop limit"),
        ),
        ("4", format!("bytes from {H4_AS_V6}: icmp_seq=1 ttl=61")),
    ];
    for (hops, want) in from_h6 {
        let out = ping(&net, &tools, &net.h6, &["-t", hops, H4_AS_V6]);
        assert!(out.contains(&want), "-t {hops}: {out}\n{}", gw.log());
    }
    let from_h4 = [
        (
            "1",
            "From 198.51.100.1 icmp_seq=1 Time to live exceeded".to_string(),
        ),
        (
            "2",
            format!("From {OWN_V4} icmp_seq=1 Time to live exceeded"),
        ),
        ("4", format!("bytes from {}: icmp_seq=1 ttl=61", EAM_10.v4)),
    ];
    for (hops, want) in from_h4 {
        let out = ping(&net, &tools, &net.h4, &["-t", hops, EAM_10.v4]);
        assert!(out.contains(&want), "-t {hops}: {out}\n{}", gw.log());
    }
}

#[test]
fn a_1400_byte_ipv4_link_sends_packet_too_big_to_h6_and_1_mib_still_arrives_intact() {
    let Some((net, tools)) = setup() else { return };
    net.ip(&net.xl, &format!("link set {} mtu 1400", net.xl_to_h4));
    net.ip(&net.h4, &format!("link set {} mtu 1400", net.h4_link));
    // h4 advertises the MSS of a 1500-byte LAN, as a host behind the small link would; so h6
    // sends full-size packets that only the Packet Too Big makes it shrink.
    net.ip(
        &net.h4,
        "route replace 192.0.2.0/24 via 198.51.100.1 advmss 1460",
    );
    let gw = Gateway::start(&net, &tools, &[EAM_10]);
    let blob = pattern(1 << 20, 4);
    let _web6 = Nginx::start(&net, &tools, &net.h6, &[("blob", &blob)]);

    let too_big = net.snmp6(&net.h6, "Icmp6InPktTooBigs");
    let url = format!("http://{}:{HTTP_PORT}/blob", EAM_10.v4);
    assert_same_bytes(&curl(&net, &tools, &net.h4, &url, &gw), &blob);

    assert!(
        net.snmp6(&net.h6, "Icmp6InPktTooBigs") > too_big,
        "h6 got no Packet Too Big\n{}",
        gw.log()
    );
    // 1400 on the IPv4 link is 1420 for IPv6, whose header is 20 bytes longer.
    let route = net
        .ip_output(&net.h6, &format!("-6 route get {H4_AS_V6}"))
        .unwrap();
    assert!(route.contains(" mtu 1420 "), "{route}");
}

#[test]
fn sighup_adds_an_eam_entry_without_dropping_a_running_download() {
    let Some((net, tools)) = setup() else { return };
    let mut gw = Gateway::start(&net, &tools, &[EAM_10]);
    let blob = pattern(3 << 19, 5);
    let _web4 = Nginx::start(&net, &tools, &net.h4, &[("blob", &blob)]);
    let h4 = udp(&net, &net.h4, "0.0.0.0:5000");
    let h6_11 = udp(&net, &net.h6, &format!("[{}]:6000", EAM_11.v6));

    // Before: h6's second address has no mapping, so nothing from it reaches h4.
    h6_11.send_to(b"before", addr(H4_AS_V6, 5000)).unwrap();
    assert_eq!(recv(&h4), None);

    // 1.5 MiB at 512 KiB/s: about three seconds, well past the reload.
    let dir = Scratch::new("nat64-download");
    let download = dir.path("blob");
    let url = format!("http://[{H4_AS_V6}]:{HTTP_PORT}/blob");
    let out = download.to_str().unwrap();
    let args = [
        "-sS",
        "--fail",
        "-g",
        "--limit-rate",
        "512k",
        "--max-time",
        "20",
        "-o",
        out,
        url.as_str(),
    ];
    let curl = net.spawn(&net.h6, &tools.curl, &args, &dir.path("curl.log"));
    let under_way = Instant::now() + Duration::from_secs(5);
    while std::fs::metadata(&download).map_or(0, |m| m.len()) == 0 {
        assert!(Instant::now() < under_way, "the download never started");
        std::thread::sleep(Duration::from_millis(20));
    }

    let tun = gw.tun_index();
    gw.reload(&[EAM_10, EAM_11]);
    assert_eq!(
        net.wait(curl, Duration::ZERO),
        None,
        "the download ended before the reload"
    );

    // After: the new mapping, once the reload is through (it is asynchronous).
    let deadline = Instant::now() + Duration::from_secs(5);
    let from = loop {
        h6_11.send_to(b"after", addr(H4_AS_V6, 5000)).unwrap();
        if let Some((got, from)) = recv(&h4) {
            assert_eq!(got, b"after");
            break from;
        }
        assert!(Instant::now() < deadline, "::11 never mapped\n{}", gw.log());
    };
    assert_eq!(endpoint(from), endpoint(addr(EAM_11.v4, 6000)));
    h4.send_to(b"back", addr(EAM_11.v4, 6000)).unwrap();
    let (got, from) = recv(&h6_11).unwrap_or_else(|| panic!("nothing reached ::11\n{}", gw.log()));
    assert_eq!(
        (got.as_slice(), endpoint(from)),
        (&b"back"[..], endpoint(addr(H4_AS_V6, 5000)))
    );
    assert_eq!(gw.tun_index(), tun, "the TUN was recreated");

    let status = net.wait(curl, Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "curl: {status:?} {}\n{}",
        std::fs::read_to_string(dir.path("curl.log")).unwrap_or_default(),
        gw.log()
    );
    assert_same_bytes(&std::fs::read(&download).unwrap(), &blob);
}

#[test]
fn a_bad_file_on_sighup_keeps_the_running_config_and_sigterm_exits_0() {
    let Some((net, tools)) = setup() else { return };
    if tools.lacks("reload") {
        return;
    }
    let gw = Gateway::start(&net, &tools, &[EAM_10]);
    // A file that would add ::11 if it were half applied, with one bad value.
    gw.write_config(&[EAM_10, EAM_11]);
    let path = gw.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"drop\"", "\"sometimes\"")).unwrap();
    net.signal(gw.pid, libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(5);
    while counter(&gw.metrics(), "sixgate_reload_failures_total", "") == 0 {
        assert!(Instant::now() < deadline, "no reload failure\n{}", gw.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    gw.assert_running();

    let h4 = udp(&net, &net.h4, "0.0.0.0:5000");
    for (eam, reaches) in [(EAM_10, true), (EAM_11, false)] {
        let h6 = udp(&net, &net.h6, &format!("[{}]:0", eam.v6));
        h6.send_to(b"still", addr(H4_AS_V6, 5000)).unwrap();
        let from = recv(&h4).map(|(_, from)| from.ip());
        let want = reaches.then(|| eam.v4.parse::<IpAddr>().unwrap());
        assert_eq!(from, want, "from {}\n{}", eam.v6, gw.log());
    }

    net.signal(gw.pid, libc::SIGTERM);
    let status = net.wait(gw.pid, Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", gw.log());
}

#[test]
fn metrics_count_translated_packets_both_ways_echo_replies_and_drops() {
    let Some((net, tools)) = setup() else { return };
    if tools.lacks("metrics") {
        return;
    }
    let gw = Gateway::start(&net, &tools, &[EAM_10]);
    let before = gw.metrics();

    for (ns, own, count) in [(&net.h6, OWN_V6, "3"), (&net.h4, OWN_V4, "2")] {
        let out = net.exec(ns, &tools.ping, &["-c", count, "-i", "0.2", "-W", "2", own]);
        assert!(out.status.success(), "{out:?}");
    }
    let h4 = udp(&net, &net.h4, "0.0.0.0:5000");
    let h6 = udp(&net, &net.h6, "[::]:0");
    for _ in 0..4 {
        h6.send_to(&[6; 1000], addr(H4_AS_V6, 5000)).unwrap();
        let (_, from) = recv(&h4).expect("to h4");
        h4.send_to(&[4; 1000], from).unwrap();
        recv(&h6).expect("back to h6");
    }
    // From h6's unmapped address: nothing to translate it to, so a drop.
    let unmapped = udp(&net, &net.h6, &format!("[{}]:0", EAM_11.v6));
    unmapped.send_to(b"x", addr(H4_AS_V6, 5000)).unwrap();
    assert_eq!(recv(&h4), None);

    let after = gw.metrics();
    let grew =
        |name: &str, label: &str| counter(&after, name, label) - counter(&before, name, label);
    let context = format!("before:\n{before}\nafter:\n{after}");
    assert_eq!(grew("sixgate_nat64_echo_replies_total", ""), 5, "{context}");
    // Bytes as read: 1000 bytes of payload behind a UDP header and an IPv6 or IPv4 one.
    for (direction, read) in [("6to4", 40 + 8 + 1000), ("4to6", 20 + 8 + 1000)] {
        let label = format!("direction=\"{direction}\"");
        let packets = grew("sixgate_nat64_packets_total", &label);
        assert_eq!(packets, 4, "{direction}\n{context}");
        let bytes = grew("sixgate_nat64_bytes_total", &label);
        assert_eq!(bytes, 4 * read, "{direction}\n{context}");
    }
    let label = "reason=\"untranslatable-source\"";
    assert_eq!(grew("sixgate_nat64_drops_total", label), 1, "{context}");
    assert!(after.contains("queue=\"0\""), "{after}");
}

/// The device name taken by something else, or by a TUN the gateway cannot share: exit 1 with a
/// message naming the cause, before anything runs. A persistent multi-queue TUN made beforehand
/// (the operator's way to keep routes across restarts) is attached to, and works. A device
/// deleted while the gateway runs stops its queues without a busy loop.
#[test]
fn a_device_name_taken_is_a_clear_error_and_a_persistent_tun_is_reused() {
    let Some((net, tools)) = setup() else { return };
    if tools.peer != Peer::FullProxy {
        return;
    }
    let dir = Scratch::new("nat64-device");
    let tun = &net.tun;
    let config = dir.write(
        "sixgate.toml",
        &format!("[nat64]\ntun = \"{tun}\"\npool6 = \"{POOL6}\"\nown_v6 = \"{OWN_V6}\"\n"),
    );
    let config = config.to_str().unwrap();
    let refused = |why: &str| {
        let out = net.exec(&net.xl, &tools.gateway, &["--config", config]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(why), "wanted {why:?} in:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    };
    // A veth (this kernel may have no dummy module); deleting one end deletes both.
    net.ip(
        &net.xl,
        &format!("link add {tun} type veth peer name {tun}p"),
    );
    refused("is not a TUN device");
    net.ip(&net.xl, &format!("link del {tun}"));
    net.ip(&net.xl, &format!("tuntap add dev {tun} mode tun"));
    refused("single-queue TUN device");
    net.ip(&net.xl, &format!("tuntap del dev {tun} mode tun"));

    net.ip(
        &net.xl,
        &format!("tuntap add dev {tun} mode tun multi_queue"),
    );
    net.ip(&net.xl, &format!("link set {tun} up"));
    net.ip(&net.xl, &format!("-6 route add {OWN_V6}/128 dev {tun}"));
    let log = dir.path("gateway.log");
    let pid = net.spawn(&net.xl, &tools.gateway, &["--config", config], &log);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !net
        .exec(&net.xl, &tools.ping, &["-c", "1", "-W", "0.5", OWN_V6])
        .status
        .success()
    {
        assert!(
            net.wait(pid, Duration::ZERO).is_none() && Instant::now() < deadline,
            "no answer through the persistent device:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    net.signal(pid, libc::SIGTERM);
    assert_eq!(
        net.wait(pid, Duration::from_secs(5)).and_then(|s| s.code()),
        Some(0)
    );
    // Persistent: the device and the operator's route outlive the program.
    let route = net.ip_output(&net.xl, &format!("-6 route show dev {tun}"));
    assert!(
        route.is_some_and(|r| r.contains(OWN_V6)),
        "the route went away"
    );
    net.ip(
        &net.xl,
        &format!("tuntap del dev {tun} mode tun multi_queue"),
    );

    // The device deleted under a running gateway: its queues stop with one error line each,
    // and no worker spins on the dead descriptor.
    let pid = net.spawn(&net.xl, &tools.gateway, &["--config", config], &log);
    let deadline = Instant::now() + Duration::from_secs(10);
    while net
        .ip_output(&net.xl, &format!("link show dev {tun}"))
        .is_none()
    {
        assert!(Instant::now() < deadline, "the device never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    net.ip(&net.xl, &format!("link del {tun}"));
    std::thread::sleep(Duration::from_millis(500));
    let cpu = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let before = cpu(pid);
    std::thread::sleep(Duration::from_secs(1));
    let ticks = cpu(pid) - before;
    assert!(
        ticks < 20,
        "{ticks} ticks of CPU in a second after the device went away"
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("the device went away"), "{text}");
    net.signal(pid, libc::SIGTERM);
    assert_eq!(
        net.wait(pid, Duration::from_secs(5)).and_then(|s| s.code()),
        Some(0)
    );
}
