//! Apache httpd 2.4 (Debian's `apache2`) behind the full proxy (`examples/full-proxy`), as the
//! operator's customers run it: `mod_remoteip` with `RemoteIPProxyProtocol On` takes the client
//! address from our PROXY header (v1 or v2, plain HTTP or TLS routed by SNI), and a host without
//! it takes plain connections. Apache's access log (`%a`) is the evidence. What Apache does with
//! a route that sends the wrong thing is pinned down too, since that is what an operator sees.

#[path = "peers/apache.rs"]
mod apache;
mod peers;
#[path = "support/example_binary.rs"]
mod support;

use core::net::SocketAddr;
use core::time::Duration;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Instant;

use apache::{Apache, Vhost};
use peers::{Running, Scratch, free_port, program, run};
use support::example_binary;

/// The proxy, as an operator runs it.
fn proxy_binary() -> PathBuf {
    example_binary(env!("CARGO_MANIFEST_DIR"), "full-proxy")
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The proxy on 127.0.0.1 and [::1] at each `(port, mode)`, with one route per
/// `(name, proxy_protocol, Apache port)`.
fn start_proxy(dir: &Scratch, listeners: &[(u16, &str)], routes: &[(&str, &str, u16)]) -> Running {
    let mut config = String::new();
    for (port, mode) in listeners {
        config += &format!(
            "[[listen]]\naddresses = [\"127.0.0.1:{port}\", \"[::1]:{port}\"]\nmode = \"{mode}\"\n\n"
        );
    }
    for (name, proxy_protocol, port) in routes {
        config += &format!(
            "[[route]]\nhosts = [\"{name}\"]\nproxy_protocol = \"{proxy_protocol}\"\nbackends = [{{ address = \"[::1]:{port}\" }}]\n\n"
        );
    }
    let file = dir.write("sixgate.toml", &config);
    Running::start(
        &proxy_binary(),
        &["--config", file.to_str().unwrap()],
        dir.path("proxy.log"),
        addr(&format!("127.0.0.1:{}", listeners[0].0)),
    )
}

/// Apache with `p` (PROXY required, plain HTTP), `n` (no PROXY) and, given a certificate, `t`
/// (PROXY required, TLS): the running server and the three ports.
fn apache_backends(dir: &Scratch, tls: Option<(&Path, &Path)>) -> Option<(Apache, u16, u16, u16)> {
    let apache2 = program("apache2")?;
    let (p, n, t) = (free_port(), free_port(), free_port());
    let mut vhosts = vec![
        Vhost {
            name: "p",
            port: p,
            proxy_protocol: true,
            tls: None,
        },
        Vhost {
            name: "n",
            port: n,
            proxy_protocol: false,
            tls: None,
        },
    ];
    if tls.is_some() {
        vhosts.push(Vhost {
            name: "t",
            port: t,
            proxy_protocol: true,
            tls,
        });
    }
    // Waiting on `n`: a probe of a PROXY port would be a connection without a header.
    let apache = Apache::start(&apache2, dir, &vhosts, addr(&format!("[::1]:{n}")));
    Some((apache, p, n, t))
}

/// What [`get`] sends: a whole HTTP/1.0 request, so Apache answers and closes.
fn request(host: &str) -> String {
    format!("GET /hello.txt HTTP/1.0\r\nHost: {host}\r\n\r\n")
}

/// [`request`] for `host` through the proxy at `to`: the client's own address, what came back
/// until the close, and how long that took.
fn get(to: SocketAddr, host: &str) -> (SocketAddr, std::io::Result<String>, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let client = s.local_addr().unwrap();
    s.write_all(request(host).as_bytes()).unwrap();
    let mut answer = Vec::new();
    let read = s
        .read_to_end(&mut answer)
        .map(|_| String::from_utf8_lossy(&answer).into_owned());
    (client, read, started.elapsed())
}

/// The line of `peer`'s log that contains `needle`, once it is there: the proxy logs a connection
/// after it has closed both ends.
fn log_line(peer: &Running, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = peer.log_text();
        if let Some(line) = log.lines().find(|l| l.contains(needle)) {
            return line.to_owned();
        }
        assert!(Instant::now() < deadline, "no {needle:?} in:\n{log}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts a 200 whose body is `body`; `context` goes into the failure message.
fn assert_ok(answer: &str, body: &str, context: &dyn Fn() -> String) {
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with(&format!("\r\n\r\n{body}")),
        "{answer:?}\n{}",
        context()
    );
}

#[test]
fn proxy_v1_and_v2_give_apache_the_client_from_ipv4_and_ipv6() {
    let dir = Scratch::new("apache-remoteip");
    let Some((apache, p, _, _)) = apache_backends(&dir, None) else {
        return;
    };
    let http = free_port();
    let proxy = start_proxy(
        &dir,
        &[(http, "http")],
        &[("v1.test", "v1", p), ("v2.test", "v2", p)],
    );
    let context = || format!("{}\n{}", proxy.log_text(), apache.error_log());
    let mut expected = Vec::new();
    // One Apache port takes both versions: mod_remoteip tells them apart by their first bytes.
    for (host, from) in [
        ("v1.test", "127.0.0.1"),
        ("v2.test", "127.0.0.1"),
        ("v1.test", "[::1]"),
        ("v2.test", "[::1]"),
    ] {
        let (client, answer, _) = get(addr(&format!("{from}:{http}")), host);
        assert_ok(&answer.unwrap(), "apache p\n", &context);
        // %a and its port are the client's, %{c}a the proxy's connection (from ::1): with an
        // IPv6 client both are ::1, and the port tells the client from the proxy.
        expected.push(format!(
            "{} {} ::1 200 \"GET /hello.txt HTTP/1.0\" {host}",
            client.ip(),
            client.port()
        ));
        assert_eq!(
            apache.access_log("p", expected.len()),
            expected,
            "{}",
            context()
        );
    }
}

#[test]
fn tls_by_sni_with_proxy_v1_and_v2_to_mod_ssl() {
    let (Some(openssl), Some(curl)) = (program("openssl"), program("curl")) else {
        return;
    };
    let dir = Scratch::new("apache-tls");
    let (cert, key) = peers::self_signed(&openssl, &dir, "t.test");
    let Some((apache, _, _, t)) = apache_backends(&dir, Some((&cert, &key))) else {
        return;
    };
    let tls = free_port();
    let proxy = start_proxy(
        &dir,
        &[(tls, "tls")],
        &[("t1.test", "v1", t), ("t2.test", "v2", t)],
    );
    let context = || format!("{}\n{}", proxy.log_text(), apache.error_log());
    let mut expected = Vec::new();
    for (host, from) in [
        ("t1.test", "127.0.0.1"),
        ("t2.test", "127.0.0.1"),
        ("t1.test", "[::1]"),
        ("t2.test", "[::1]"),
    ] {
        // curl says which address and port it connected from after the body.
        let out = run(
            &curl,
            &[
                "-sk",
                "--resolve",
                &format!("{host}:{tls}:{from}"),
                "-w",
                "\n%{local_ip} %{local_port}",
                &format!("https://{host}:{tls}/hello.txt"),
            ],
        );
        let out = String::from_utf8_lossy(&out).into_owned();
        let Some(("apache t", client)) = out.split_once("\n\n") else {
            panic!("{out:?}\n{}", context());
        };
        // The SNI Apache logs is the one we routed on: the ClientHello crossed untouched.
        expected.push(format!(
            "{client} ::1 200 \"GET /hello.txt HTTP/1.1\" {host}"
        ));
        assert_eq!(
            apache.access_log("t", expected.len()),
            expected,
            "{}",
            context()
        );
    }
}

#[test]
fn a_route_without_proxy_reaches_a_plain_apache_which_sees_the_proxy() {
    let dir = Scratch::new("apache-plain");
    let Some((apache, _, n, _)) = apache_backends(&dir, None) else {
        return;
    };
    let http = free_port();
    let proxy = start_proxy(&dir, &[(http, "http")], &[("plain.test", "none", n)]);
    let context = || format!("{}\n{}", proxy.log_text(), apache.error_log());
    let (client, answer, _) = get(addr(&format!("127.0.0.1:{http}")), "plain.test");
    assert_ok(&answer.unwrap(), "apache n\n", &context);
    // Without PROXY, Apache's client is the proxy: ::1 and the proxy's own port.
    let line = &apache.access_log("n", 1)[0];
    let fields: Vec<&str> = line.splitn(3, ' ').collect();
    assert_eq!(fields[0], "::1", "{line}");
    assert_ne!(fields[1], client.port().to_string(), "{line}");
    assert_eq!(
        fields[2], "::1 200 \"GET /hello.txt HTTP/1.0\" plain.test",
        "{line}"
    );
}

/// Mixing PROXY and non-PROXY on one backend address and port, both ways round: what the
/// client, Apache's logs and the proxy show, so an operator can recognise it.
#[test]
fn a_route_that_disagrees_with_apache_about_proxy_fails_visibly() {
    let dir = Scratch::new("apache-mixed");
    let Some((apache, p, n, _)) = apache_backends(&dir, None) else {
        return;
    };
    let http = free_port();
    let proxy = start_proxy(
        &dir,
        &[(http, "http")],
        &[
            ("missing.test", "none", p),
            ("good.test", "v1", p),
            ("unexpected.test", "v1", n),
            ("unexpected2.test", "v2", n),
        ],
    );
    let context = || format!("{}\n{}", proxy.log_text(), apache.error_log());
    let front = addr(&format!("127.0.0.1:{http}"));

    // No header where Apache requires one: once it has 16 bytes that start neither "PROXY " nor
    // the v2 signature, mod_remoteip aborts the connection: no answer, no access log line, and
    // nothing in the error log above LogLevel debug. The client sees an orderly close, at once.
    let (client, answer, took) = get(front, "missing.test");
    assert_eq!(answer.unwrap(), "", "{}", context());
    assert!(took < Duration::from_secs(2), "{took:?}");
    // The proxy's line for the connection: the request went up, nothing came down.
    let line = log_line(&proxy, &format!("client={client} "));
    let sent = request("missing.test").len();
    assert!(
        line.contains(&format!(" up={sent} down=0 ")) && line.contains(" name=\"missing.test\" "),
        "{line}"
    );
    // A good request after it is the only line in that host's log.
    let (client, answer, _) = get(front, "good.test");
    assert_ok(&answer.unwrap(), "apache p\n", &context);
    assert_eq!(
        apache.access_log("p", 1),
        [format!(
            "127.0.0.1 {} ::1 200 \"GET /hello.txt HTTP/1.0\" good.test",
            client.port()
        )],
        "{}",
        context()
    );

    // A header where Apache expects none: the PROXY line is taken for the request line, and
    // refused with a 400 that the client receives instead of its page.
    let (client, answer, _) = get(front, "unexpected.test");
    let answer = answer.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer:?}\n{}",
        context()
    );
    // Apache logs the first three words of that line; its reason is in the error log (at
    // LogLevel core:debug): more words than a request line has.
    let line = &apache.access_log("n", 1)[0];
    let fields: Vec<&str> = line.splitn(3, ' ').collect();
    assert_eq!(fields[0], "::1", "{line}");
    assert_ne!(fields[1], client.port().to_string(), "{line}");
    assert_eq!(fields[2], "::1 400 \"PROXY TCP4 127.0.0.1\" -", "{line}");
    assert!(
        apache.error_log().contains(
            "AH03448: HTTP Request Line; Excess whitespace (disallowed by HttpProtocolOptions Strict)"
        ),
        "{}",
        context()
    );
    // v2 fares no better: Apache skips the signature's leading CRLFs as empty lines, then meets
    // a NUL byte. The client gets the same 400; the log has an empty request line.
    let (client, answer, _) = get(front, "unexpected2.test");
    let answer = answer.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer:?}\n{}",
        context()
    );
    let line = &apache.access_log("n", 2)[1];
    let fields: Vec<&str> = line.splitn(3, ' ').collect();
    assert_eq!(fields[0], "::1", "{line}");
    assert_ne!(fields[1], client.port().to_string(), "{line}");
    assert_eq!(fields[2], "::1 400 \"\" -", "{line}");
    assert!(
        apache
            .error_log()
            .contains("AH00566: request failed: malformed request line"),
        "{}",
        context()
    );
}

/// A DNS-like name of exactly `len` bytes: labels of `letter`, at most 63 long, then `.test`.
fn name_of_len(len: usize, letter: char) -> String {
    let mut name = String::new();
    while name.len() < len - ".test".len() {
        if !name.is_empty() {
            name.push('.');
        }
        let room = (len - ".test".len() - name.len()).min(63);
        name.extend(core::iter::repeat_n(letter, room));
    }
    name += ".test";
    assert_eq!(name.len(), len);
    name
}

/// mod_remoteip keeps the v2 header in a fixed buffer: 16 bytes and the largest address block
/// (AF_UNIX, 216), so 232 bytes in all. Ours carries the name as an AUTHORITY TLV (3 bytes and
/// the name): after 36 bytes of IPv6 addresses a name over 177 bytes does not fit, after 12 of
/// IPv4 one over 201, and Apache drops the connection. v1 has no name in it and takes any.
#[test]
fn apache_refuses_a_v2_header_over_232_bytes_so_long_names_need_v1() {
    let dir = Scratch::new("apache-long-names");
    let Some((apache, p, _, _)) = apache_backends(&dir, None) else {
        return;
    };
    // (name, version, client, whether Apache takes the header)
    let cases = [
        (name_of_len(177, 'a'), "v2", "[::1]", true),
        (name_of_len(178, 'b'), "v2", "[::1]", false),
        (name_of_len(201, 'c'), "v2", "127.0.0.1", true),
        (name_of_len(202, 'd'), "v2", "127.0.0.1", false),
        (name_of_len(253, 'e'), "v1", "[::1]", true),
    ];
    let http = free_port();
    let routes: Vec<_> = cases
        .iter()
        .map(|(name, v, _, _)| (&name[..], *v, p))
        .collect();
    let proxy = start_proxy(&dir, &[(http, "http")], &routes);
    let context = || format!("{}\n{}", proxy.log_text(), apache.error_log());
    let (mut expected, mut refused) = (Vec::new(), 0);
    for (name, _, from, taken) in &cases {
        let (client, answer, _) = get(addr(&format!("{from}:{http}")), name);
        let answer = answer.unwrap();
        if *taken {
            assert_ok(&answer, "apache p\n", &context);
            expected.push(format!(
                "{} {} ::1 200 \"GET /hello.txt HTTP/1.0\" {name}",
                client.ip(),
                client.port()
            ));
        } else {
            assert_eq!(answer, "", "{}", context());
            refused += 1;
        }
        let too_long = "AH10186: RemoteIPProxyProtocol protocol header length too long";
        assert_eq!(
            apache.error_log().matches(too_long).count(),
            refused,
            "{}",
            context()
        );
        assert_eq!(
            apache.access_log("p", expected.len()),
            expected,
            "{}",
            context()
        );
    }
}
